# Cost of the quota check of migration 0006 in plain SQLite: the check step alone, against a
# video + job insert, for a user at 19 of 20 videos at once and 59 of 60 this hour, among 100,000
# other videos (the schema of migrations/, a fresh file in a temporary folder).
#   python3 local/bench/quota_cost.py
import os, sqlite3, tempfile, time
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
c = sqlite3.connect(os.path.join(tempfile.mkdtemp(), "quota_cost.db"))
for m in sorted(os.listdir(os.path.join(root, "migrations"))):
    c.executescript(open(os.path.join(root, "migrations", m)).read())
c.execute("INSERT INTO users (id,email,password_hash,created_at,updated_at) VALUES (1,'a','x','t','t'),(2,'b','x','t','t')")
now = "2026-12-03T18:00:00.000Z"; hour_ago = "2026-12-03T17:00:00.000Z"
def video(u, status, created):
    c.execute("INSERT INTO video_sources (user_id,source_type,source_url,youtube_video_id,status,created_at,updated_at) VALUES (?,'youtube','u','v',?,?,?)", (u, status, created, created))
for i in range(100_000): video(2, "ready", "2026-11-01T00:00:00.000Z")
for i in range(19): video(1, "pending", now)
for i in range(40): video(1, "ready", now)
c.commit()
check = "INSERT INTO quota_checks (user_id,max_active,max_new,since) SELECT 1, 20, 60, ? WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys WHERE user_id = NULL)"
N = 20_000
for label, sql, args in [("quota check", check, (hour_ago,))]:
    t = time.perf_counter()
    for _ in range(N): c.execute(sql, args)
    el = time.perf_counter() - t
    print(f"{label}: {el / N * 1e6:.1f} us each")
c.commit()
c.isolation_level = None
t = time.perf_counter()
for _ in range(2000):
    c.execute("BEGIN IMMEDIATE")
    video(1, "ready", now)
    c.execute("INSERT INTO processing_jobs (video_source_id,job_type,status,payload,run_after,created_at,updated_at,finished_at) VALUES (last_insert_rowid(),'t','completed','{}',?,?,?,?)", (now, now, now, now))
    c.execute("ROLLBACK")
print(f"video + job insert (rolled back): {(time.perf_counter() - t) / 2000 * 1e6:.1f} us each")
