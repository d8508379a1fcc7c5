"""Reads the two wrk runs of local/load/run.sh, waits for the jobs they created, prints figures.

Fails (exit 1) on a failed request or a job that does not complete in time.
"""

import argparse
import json
import sqlite3
import sys
import time


def figures(path):
    lines = [l for l in open(path) if l.startswith("{")]
    if not lines:
        sys.exit(f"no figures in {path}:\n" + open(path).read())
    return json.loads(lines[-1])


def failed(run):
    return sum(run[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts", "non_2xx"))


def job_states(db, email):
    conn = sqlite3.connect(db, timeout=30)
    try:
        rows = conn.execute(
            """SELECT j.status, count(*) FROM processing_jobs j
               JOIN video_sources v ON v.id = j.video_source_id
               JOIN users u ON u.id = v.user_id
               WHERE u.email = ? GROUP BY j.status""",
            (email,),
        ).fetchall()
    finally:
        conn.close()
    return dict(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--email", required=True)
    ap.add_argument("--connections", type=int, required=True)
    ap.add_argument("--post", required=True)
    ap.add_argument("--get", required=True)
    ap.add_argument("--drain-timeout", type=float, default=600)
    a = ap.parse_args()

    post, get = figures(a.post), figures(a.get)
    problems = []
    for name, run in (("POST youtube", post), ("GET videos", get)):
        if failed(run):
            problems.append(f"{name}: {failed(run)} failed requests {run}")

    ended = time.monotonic()
    states = job_states(a.db, a.email)
    while set(states) - {"completed"} and time.monotonic() - ended < a.drain_timeout:
        time.sleep(0.5)
        states = job_states(a.db, a.email)
    drained = time.monotonic() - ended
    jobs = sum(states.values())
    # wrk counts the responses it read; a request in flight when the run ended may still have
    # created its job, so up to one job per POST connection more than counted responses.
    if not post["requests"] <= jobs <= post["requests"] + a.connections:
        problems.append(f"{jobs} jobs for {post['requests']} answered POSTs")
    if set(states) - {"completed"}:
        problems.append(f"jobs not completed after {a.drain_timeout:.0f} s: {states}")

    print()
    print(f"| endpoint | connections | requests | req/s | p50 ms | p90 ms | p99 ms | max ms | failed |")
    print(f"|---|---|---|---|---|---|---|---|---|")
    for name, run in (("POST /viral-clip/video/youtube", post), ("GET /viral-clip/videos", get)):
        print(
            f"| {name} | {a.connections} | {run['requests']} | {run['requests'] / run['seconds']:.0f} "
            f"| {run['p50_ms']:.2f} | {run['p90_ms']:.2f} | {run['p99_ms']:.2f} | {run['max_ms']:.2f} "
            f"| {failed(run)} |"
        )
    print()
    print(
        f"jobs created: {jobs}; completed: {states.get('completed', 0)}; "
        f"queue drained {drained:.1f} s after the load ended"
    )
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
