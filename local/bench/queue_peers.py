"""Our queue against SQLite-backed queues from PyPI, one workload, one machine, one run.

Run through local/bench/queue_peers.sh (it installs the pinned peers into .venv).

Workload (issue 7): enqueue JOBS (default 20,000) one per transaction, then drain them with
1 and with 4 workers, each worker taking a job and marking it done until the queue is empty.
Each queue is driven the way its documentation says to share it:
  - litequeue 0.9: a LiteQueue per worker process (its pop is one UPDATE ... RETURNING);
  - persist-queue 1.1 SQLiteAckQueue: one queue object, workers as threads
    (multithreading=True; its get() is a SELECT then an UPDATE under an in-process lock, so
    separate processes could take the same item);
  - ours: `cargo bench -p shared --bench queue -- --peer-workload`: `Queue::enqueue` (a job for a
    video written beforehand, as the peers' tables are; one INSERT prepared once per connection),
    drained one job per claim and as the worker claims (triggers and leases included). Beside
    it, not counted: the API's submission, a new video row with its job in one transaction.
Every drain checks that each job was taken exactly once.
"""

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time

PAYLOAD = {"video_type": "auto", "aspect_ratio": "9:16", "clip_length_preset": "auto_0_60", "subtitle": True}


def item(i):
    return json.dumps({**PAYLOAD, "video_source_id": i})


# ---- litequeue -------------------------------------------------------------------------------


def timed_puts(q, n):
    """Seconds to put n items, one by one; closes q."""
    started = time.perf_counter()
    for i in range(n):
        q.put(item(i))
    elapsed = time.perf_counter() - started
    q.close()
    return elapsed


def lite_enqueue(path, n):
    from litequeue import LiteQueue

    return timed_puts(LiteQueue(path, timeout=60), n)


def lite_worker(path, ready, go, out):
    from litequeue import LiteQueue

    q = LiteQueue(path, timeout=60)
    taken = []
    ready.release()
    go.wait()
    while True:
        m = q.pop()
        if m is None:
            break
        q.done(m.message_id)
        taken.append(json.loads(m.data)["video_source_id"])
    q.close()
    out.put(taken)


def lite_drain(path, workers):
    ctx = mp.get_context("fork")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=lite_worker, args=(path, ready, go, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    started = time.perf_counter()
    go.set()
    taken = [out.get() for _ in procs]
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join()
    return elapsed, [i for t in taken for i in t]


# ---- persist-queue ------------------------------------------------------------------------------


def ack_enqueue(path, n):
    from persistqueue import SQLiteAckQueue

    return timed_puts(SQLiteAckQueue(path, multithreading=True, auto_commit=True), n)


def ack_drain(path, workers):
    from persistqueue import Empty, SQLiteAckQueue

    q = SQLiteAckQueue(path, multithreading=True, auto_commit=True)
    taken, lock, go = [], threading.Lock(), threading.Event()

    def work():
        mine = []
        go.wait()
        while True:
            try:
                data = q.get(block=False)
            except Empty:
                break
            q.ack(data)
            mine.append(json.loads(data)["video_source_id"])
        with lock:
            taken.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    started = time.perf_counter()
    go.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    q.close()
    return elapsed, taken


# ---- the run ---------------------------------------------------------------------------------------


def run_peer(name, enqueue, drain, jobs, workdir):
    figures = {}
    for workers in (1, 4):
        path = os.path.join(workdir, f"{name}-{workers}")
        if name == "litequeue":
            path += ".db"
        else:
            os.makedirs(path)
        secs = enqueue(path, jobs)
        if workers == 1:
            figures["enqueue"] = jobs / secs
        secs, taken = drain(path, workers)
        if sorted(taken) != list(range(jobs)):
            dup = len(taken) - len(set(taken))
            sys.exit(f"{name} with {workers} workers: {len(taken)} taken, {dup} twice, of {jobs}")
        figures[f"drain_{workers}"] = jobs / secs
        print(f"  {name}: {workers} worker(s) drained {jobs} in {secs:.2f} s", flush=True)
    return figures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20_000)
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    with tempfile.TemporaryDirectory() as workdir:
        print(f"workload: enqueue {a.jobs} one per transaction; drain with 1 and 4 workers", flush=True)
        lite = run_peer("litequeue", lite_enqueue, lite_drain, a.jobs, workdir)
        ack = run_peer("persist-queue", ack_enqueue, ack_drain, a.jobs, workdir)

    print("  ours: cargo bench -p shared --bench queue -- --peer-workload", flush=True)
    proc = subprocess.run(
        ["cargo", "bench", "--quiet", "-p", "shared", "--bench", "queue", "--",
         "--peer-workload", "--jobs", str(a.jobs)],
        cwd=root, check=True, stdout=subprocess.PIPE, text=True,
    )
    ours = json.loads([l for l in proc.stdout.splitlines() if l.startswith("{")][-1])

    rows = [
        ("enqueue, one per transaction (jobs/s)", ours["enqueue"], lite["enqueue"], ack["enqueue"]),
        ("drain, 1 worker, one job per claim (jobs/s)", ours["drain_one_by_one_1"], lite["drain_1"], ack["drain_1"]),
        ("drain, 4 workers, one job per claim (jobs/s)", ours["drain_one_by_one_4"], lite["drain_4"], ack["drain_4"]),
        ("drain, 1 worker, the shipped worker (jobs/s)", ours["drain_worker_1"], lite["drain_1"], ack["drain_1"]),
        ("drain, 4 workers, the shipped worker (jobs/s)", ours["drain_worker_4"], lite["drain_4"], ack["drain_4"]),
    ]
    # More than a queue's put: the ingest's write, a video row (3 b-trees) with its job.
    context = [
        ("(context) the API's submission, a new video + its job per transaction (jobs/s)", ours["submission"], lite["enqueue"], ack["enqueue"]),
    ]
    print()
    print("| workload | ours | litequeue | persist-queue SQLiteAckQueue | ours / litequeue | ours / persist-queue |")
    print("|---|---|---|---|---|---|")
    behind = []
    for counted, (name, o, l, p) in [(True, r) for r in rows] + [(False, r) for r in context]:
        print(f"| {name} | {o:,.0f} | {l:,.0f} | {p:,.0f} | {o / l:.2f}x | {o / p:.2f}x |")
        if counted and (o < l or o < p):
            behind.append(name)
    print()
    print("ahead of both on every row" if not behind else "behind a peer on: " + "; ".join(behind))


if __name__ == "__main__":
    main()
