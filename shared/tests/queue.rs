use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use serde_json::json;
use shared::config::QueueConfig;
use shared::db::{self, Db};
use shared::model::{JobStatus, VideoStatus};
use shared::queue::{self, FailOutcome, Queue, CLAIMABLE_SQL, CLAIM_SQL, EXPIRED_SQL};
use shared::repo;
use testkit::TestEnv;

fn queue_with_lease(lease: Duration) -> Queue {
    Queue::new(QueueConfig {
        lease,
        ..QueueConfig::default()
    })
}

#[tokio::test]
async fn creating_a_video_and_its_job_is_one_transaction() {
    let t = TestEnv::start().await;
    let (mut video, job) = testkit::seed::new_video(t.seed_user().await, 1);
    video.user_id = 9_999; // no such user: the video insert fails its foreign key

    let err = testkit::seed::video_with_job(&t.conn, &video, &job).await;

    assert!(err.is_err());
    assert_eq!(t.count("SELECT count(*) FROM video_sources").await, 0);
    assert_eq!(t.count("SELECT count(*) FROM processing_jobs").await, 0);

    let (video, job) = testkit::seed::new_video(t.seed_user().await, 2);
    let (v, j) = testkit::seed::video_with_job(&t.conn, &video, &job)
        .await
        .unwrap();
    assert_eq!(
        (v.status, j.status, j.progress, j.attempts),
        (VideoStatus::Pending, JobStatus::Queued, 0.0, 0)
    );
    assert_eq!(j.video_source_id, v.id);
    assert_eq!(j.payload["aspect_ratio"], "9:16");
}

#[tokio::test]
async fn enqueue_adds_a_claimable_job_to_an_existing_video_and_refuses_a_missing_one() {
    // Arrange: a video whose first job is done.
    let t = TestEnv::start().await;
    let video_id = t.enqueue(1).await[0].0.id;
    let q = Queue::new(QueueConfig::default());
    let first = q.claim(&t.conn, "w", 1).await.unwrap().remove(0);
    assert!(q.complete(&t.conn, &first.lease, &json!({})).await.unwrap());
    let (_, job) = testkit::seed::new_video(t.seed_user().await, 2);

    // Act
    let queued = q.enqueue(&t.conn, video_id, &job).await.unwrap();
    let missing = q.enqueue(&t.conn, 9_999, &job).await;

    // Assert: the job is queued, stored and the next one claimed; no job for a missing video.
    assert_eq!(
        (queued.video_source_id, queued.status, queued.attempts),
        (video_id, JobStatus::Queued, 0)
    );
    assert_eq!(t.job(queued.id).await, queued);
    assert!(missing.unwrap_err().is_foreign_key_violation());
    assert_eq!(t.count("SELECT count(*) FROM processing_jobs").await, 2);
    let claimed = q.claim(&t.conn, "w", 5).await.unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id()).collect::<Vec<_>>(),
        [queued.id]
    );
}

#[tokio::test]
async fn a_claim_takes_the_oldest_jobs_marks_videos_processing_and_gives_each_its_own_lease() {
    let t = TestEnv::start().await;
    let created = t.enqueue(5).await;
    let q = Queue::new(QueueConfig::default());

    let jobs = q.claim(&t.conn, "w1", 3).await.unwrap();

    let ids: Vec<i64> = jobs.iter().map(|j| j.id()).collect();
    assert_eq!(
        ids,
        created[..3].iter().map(|(_, j)| j.id).collect::<Vec<_>>()
    );
    let tokens: HashSet<_> = jobs.iter().map(|j| j.lease.token.clone()).collect();
    assert_eq!(tokens.len(), 3, "one lease token per job");
    for job in &jobs {
        assert_eq!(job.attempt(), 1);
        let stored = t.job(job.id()).await;
        assert_eq!(stored.status, JobStatus::Running);
        assert!(stored.lease_expires_at.is_some());
        assert_eq!(
            t.video(job.video_source_id).await.status,
            VideoStatus::Processing
        );
    }
    assert_eq!(t.video(created[3].0.id).await.status, VideoStatus::Pending);
    assert_eq!(
        q.claim(&t.conn, "w1", 10).await.unwrap().len(),
        2,
        "only two left"
    );
    assert!(q.claim(&t.conn, "w1", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn completing_sets_progress_summary_and_a_ready_video_in_one_step() {
    let t = TestEnv::start().await;
    let created = t.enqueue(1).await;
    let q = Queue::new(QueueConfig::default());
    let job = q.claim(&t.conn, "w1", 1).await.unwrap().remove(0);

    assert!(q
        .complete(&t.conn, &job.lease, &json!({"pipeline": "test"}))
        .await
        .unwrap());

    let stored = t.job(job.id()).await;
    assert_eq!(stored.status, JobStatus::Completed);
    assert_eq!(stored.progress, 100.0);
    assert_eq!(stored.result_summary, Some(json!({"pipeline": "test"})));
    assert!(stored.finished_at.is_some());
    assert_eq!(t.video(created[0].0.id).await.status, VideoStatus::Ready);
    assert!(
        !q.complete(&t.conn, &job.lease, &json!({})).await.unwrap(),
        "a second completion is refused"
    );
}

#[test]
fn eight_workers_with_their_own_connections_drain_2000_jobs_each_completed_exactly_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = rt.block_on(TestEnv::start());
    let created = rt.block_on(t.enqueue(2_000));
    let claims = Arc::new(Mutex::new(Vec::<i64>::new()));
    let barrier = Arc::new(Barrier::new(8));
    // A statement a server did not answer in time (it may have been applied) is met as a worker
    // meets it: carry on; a claim lost that way comes back through its lease.
    let cfg = QueueConfig {
        lease: Duration::from_secs(10),
        ..QueueConfig::default()
    };

    std::thread::scope(|s| {
        for w in 0..8 {
            let (url, claims, barrier) = (t.database.url(), claims.clone(), barrier.clone());
            let cfg = cfg.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let db = Db::open(&url).await.unwrap();
                    let conn = db.connect().await.unwrap();
                    let q = Queue::new(cfg);
                    barrier.wait();
                    let started = std::time::Instant::now();
                    loop {
                        assert!(
                            started.elapsed() < Duration::from_secs(240),
                            "drain stalled"
                        );
                        // vary the batch size: single claims and batches race each other
                        let jobs = match q
                            .claim(&conn, &format!("w{w}"), 1 + fastrand::usize(0..8))
                            .await
                        {
                            Ok(jobs) => jobs,
                            Err(e) if e.is_unavailable() => continue,
                            Err(e) => panic!("{e}"),
                        };
                        if jobs.is_empty() {
                            let left = db::query_one(
                                &conn,
                                "SELECT count(*) FROM processing_jobs WHERE status <> 'completed'",
                                (),
                                |r| db::int(r, 0),
                            )
                            .await;
                            match left {
                                Ok(0) => break,
                                _ => {
                                    let _ = q.reap(&conn).await;
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                    continue;
                                }
                            }
                        }
                        claims.lock().unwrap().extend(jobs.iter().map(|j| j.id()));
                        for job in &jobs {
                            // Ok(false): its lease ran out first and it went back to the queue
                            match q.complete(&conn, &job.lease, &json!({"by": w})).await {
                                Ok(_) => {}
                                Err(e) if e.is_unavailable() => {}
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                });
            });
        }
    });

    // Every job claimed once, or again only after its lease expired: each claim a worker got is
    // one counted in `attempts`, so two workers never held the same attempt.
    let claims = claims.lock().unwrap();
    let unique: HashSet<_> = claims.iter().copied().collect();
    assert_eq!(unique.len(), 2_000, "every job claimed");
    rt.block_on(async {
        let reclaimed = t
            .count("SELECT coalesce(sum(attempts - 1), 0) FROM processing_jobs")
            .await;
        assert_eq!(
            claims.len() as i64 - 2_000,
            reclaimed,
            "no job claimed twice but after its lease expired"
        );
        assert_eq!(
            t.count("SELECT count(*) FROM processing_jobs WHERE status = 'completed'")
                .await,
            2_000
        );
        assert_eq!(
            t.count("SELECT count(*) FROM video_sources WHERE status = 'ready'")
                .await,
            2_000
        );
        assert_eq!(created.len(), 2_000);
        if !t.conn.is_remote() {
            assert_eq!(reclaimed, 0, "on a file no statement goes unanswered");
        }
    });
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_cannot_heartbeat_complete_or_fail_the_job() {
    let t = TestEnv::start().await;
    t.enqueue(1).await;
    let q = queue_with_lease(Duration::from_secs(60));
    let stale = q.claim(&t.conn, "slow", 1).await.unwrap().remove(0);
    t.clock.advance(Duration::from_secs(61));
    let reaped = q.reap(&t.conn).await.unwrap();
    assert_eq!(reaped.requeued, vec![stale.id()]);
    let other_conn = t.db.connect().await.unwrap();
    let fresh = q.claim(&other_conn, "fast", 1).await.unwrap().remove(0);
    assert_eq!(fresh.attempt(), 2);

    // the old holder acts as if it still held the job
    assert!(!q
        .heartbeat(&t.conn, &stale.lease, Some(90.0))
        .await
        .unwrap());
    assert!(!q
        .complete(&t.conn, &stale.lease, &json!({"stale": true}))
        .await
        .unwrap());
    assert_eq!(
        q.fail(&t.conn, &stale, "stale failure", false)
            .await
            .unwrap(),
        FailOutcome::LeaseLost
    );

    let job = t.job(fresh.id()).await;
    assert_eq!(
        (job.status, job.progress),
        (JobStatus::Running, 0.0),
        "nothing the stale worker did landed"
    );
    assert!(q
        .complete(&other_conn, &fresh.lease, &json!({"fresh": true}))
        .await
        .unwrap());
    let job = t.job(fresh.id()).await;
    assert_eq!(job.result_summary, Some(json!({"fresh": true})));
    assert_eq!(job.attempts, 2);
}

#[tokio::test]
async fn an_expired_lease_on_the_last_attempt_fails_the_job_and_its_video() {
    let t = TestEnv::start().await;
    let (video, mut job) = testkit::seed::new_video(t.seed_user().await, 1);
    job.max_attempts = 1;
    let (video, _) = testkit::seed::video_with_job(&t.conn, &video, &job)
        .await
        .unwrap();
    let q = queue_with_lease(Duration::from_secs(60));
    let claimed = q.claim(&t.conn, "w", 1).await.unwrap().remove(0);
    t.clock.advance(Duration::from_secs(61));

    let reaped = q.reap(&t.conn).await.unwrap();

    assert_eq!(reaped.failed, vec![claimed.id()]);
    let job = t.job(claimed.id()).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert!(
        job.error_message
            .as_deref()
            .unwrap()
            .contains("lease expired"),
        "{:?}",
        job.error_message
    );
    let video = t.video(video.id).await;
    assert_eq!(video.status, VideoStatus::Failed);
    assert_eq!(video.error_message, job.error_message);
}

#[tokio::test]
async fn a_failing_job_is_retried_with_growing_delays_then_fails_with_its_error() {
    let t = TestEnv::start().await;
    let created = t.enqueue(1).await;
    let q = Queue::new(QueueConfig {
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_secs(10),
        ..QueueConfig::default()
    });
    let mut delays = Vec::new();

    for attempt in 1..=3 {
        let job = q
            .claim(&t.conn, "w", 1)
            .await
            .unwrap()
            .pop()
            .expect("claimable once its back-off is over");
        assert_eq!(job.attempt(), attempt);
        let before = t.conn.now();
        let outcome = q
            .fail(&t.conn, &job, &format!("boom {attempt}"), true)
            .await
            .unwrap();
        match outcome {
            FailOutcome::Retrying { run_after } => {
                delays.push((run_after - before).to_std().unwrap());
                let stored = t.job(job.id()).await;
                assert_eq!(stored.status, JobStatus::Queued);
                assert_eq!(stored.run_after, run_after);
                assert_eq!(
                    stored.error_message.as_deref(),
                    Some(format!("boom {attempt}").as_str())
                );
                assert!(
                    q.claim(&t.conn, "w", 1).await.unwrap().is_empty(),
                    "not claimable during back-off"
                );
                t.clock
                    .advance((run_after - t.conn.now()).to_std().unwrap_or_default());
            }
            FailOutcome::Failed => {
                assert_eq!(attempt, 3, "fails for good only on the last attempt")
            }
            FailOutcome::LeaseLost => panic!("lease lost"),
        }
    }

    assert_eq!(delays.len(), 2);
    assert!(
        delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(101),
        "{delays:?}"
    );
    assert!(
        delays[1] >= Duration::from_millis(100) && delays[1] <= Duration::from_millis(201),
        "{delays:?}"
    );
    assert!(delays[1] >= delays[0], "{delays:?}");
    let job = t.job(created[0].1.id).await;
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.error_message.as_deref(), Some("attempt 3 of 3: boom 3"));
    let video = t.video(created[0].0.id).await;
    assert_eq!(video.status, VideoStatus::Failed);
    assert_eq!(
        video.error_message.as_deref(),
        Some("attempt 3 of 3: boom 3")
    );
}

#[tokio::test]
async fn a_permanent_error_fails_at_once() {
    let t = TestEnv::start().await;
    t.enqueue(1).await;
    let q = Queue::new(QueueConfig::default());
    let job = q.claim(&t.conn, "w", 1).await.unwrap().remove(0);

    assert_eq!(
        q.fail(&t.conn, &job, "video removed", false).await.unwrap(),
        FailOutcome::Failed
    );
    assert_eq!(t.job(job.id()).await.attempts, 1);
}

#[tokio::test]
async fn progress_never_goes_down() {
    let t = TestEnv::start().await;
    t.enqueue(1).await;
    let q = Queue::new(QueueConfig::default());
    let job = q.claim(&t.conn, "w", 1).await.unwrap().remove(0);

    for (report, stored) in [
        (40.0, 40.0),
        (25.0, 40.0),
        (75.0, 75.0),
        (-5.0, 75.0),
        (f64::NAN, 75.0),
        (250.0, 100.0),
    ] {
        assert!(q
            .heartbeat(&t.conn, &job.lease, Some(report))
            .await
            .unwrap());
        assert_eq!(
            t.job(job.id()).await.progress,
            stored,
            "after reporting {report}"
        );
    }
    // and not even a direct write can lower it
    let err = t
        .conn
        .execute(
            "UPDATE processing_jobs SET progress = 10 WHERE id = ?1",
            [job.id()],
        )
        .await;
    assert!(err.unwrap_err().to_string().contains("only rises"));
}

#[tokio::test]
async fn a_ready_video_never_changes_status_again() {
    let t = TestEnv::start().await;
    let created = t.enqueue(1).await;
    let video_id = created[0].0.id;
    let q = Queue::new(QueueConfig::default());
    let job = q.claim(&t.conn, "w", 1).await.unwrap().remove(0);
    assert!(q.complete(&t.conn, &job.lease, &json!({})).await.unwrap());
    assert_eq!(t.video(video_id).await.status, VideoStatus::Ready);

    // a second job of the same video failing for good leaves the video ready
    let (_, new_job) = testkit::seed::new_video(t.seed_user().await, 2);
    repo::processing_jobs::insert(&t.conn, video_id, &new_job, t.conn.now())
        .await
        .unwrap();
    let second = q.claim(&t.conn, "w", 1).await.unwrap().remove(0);
    assert_eq!(
        q.fail(&t.conn, &second, "boom", false).await.unwrap(),
        FailOutcome::Failed
    );
    assert_eq!(t.video(video_id).await.status, VideoStatus::Ready);

    // and a direct write is refused by the schema
    for status in ["pending", "processing", "failed"] {
        let err = t
            .conn
            .execute(
                "UPDATE video_sources SET status = ?1 WHERE id = ?2",
                (status, video_id),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("never changes status"), "{err}");
    }
    assert_eq!(t.video(video_id).await.status, VideoStatus::Ready);
}

#[tokio::test]
async fn the_claim_query_walks_an_index_not_the_table() {
    let t = TestEnv::start().await;
    t.enqueue(1_000).await;
    let q = Queue::new(QueueConfig::default());
    let jobs = q.claim(&t.conn, "w", 500).await.unwrap();
    for job in &jobs {
        assert!(q.complete(&t.conn, &job.lease, &json!({})).await.unwrap());
    }
    if !t.conn.is_remote() {
        // (sqld refuses ANALYZE; its plan is read without statistics)
        t.conn.execute("ANALYZE", ()).await.unwrap();
    }

    let plan = db::query_all(
        &t.conn,
        &format!("EXPLAIN QUERY PLAN {CLAIM_SQL}"),
        ("x", "w", "x", 1),
        |r| db::text(r, 3),
    )
    .await
    .unwrap();

    let plan = plan.join("\n");
    assert!(
        plan.contains("USING COVERING INDEX processing_jobs_turns")
            || plan.contains("USING INDEX processing_jobs_turns"),
        "{plan}"
    );
    assert!(plan.contains("USING INTEGER PRIMARY KEY"), "{plan}");
    for line in plan.lines() {
        assert!(
            !line.contains("SCAN processing_jobs") || line.contains("INDEX"),
            "table scan: {plan}"
        );
        assert!(
            !line.contains("TEMP B-TREE"),
            "sorts instead of using the index order: {plan}"
        );
    }
}

#[tokio::test]
async fn the_reaper_and_the_idle_look_walk_the_lease_index_not_the_table() {
    let t = TestEnv::start().await;
    t.enqueue(10).await;
    for (name, sql) in [("reap", queue::REAP_SQL), ("look", queue::LOOK_SQL)] {
        let plan = db::query_all(&t.conn, &format!("EXPLAIN QUERY PLAN {sql}"), ["x"], |r| {
            db::text(r, 3)
        })
        .await
        .unwrap()
        .join("\n");
        assert!(plan.contains("processing_jobs_leases"), "{name}: {plan}");
        for line in plan.lines() {
            assert!(
                !line.contains("SCAN processing_jobs") || line.contains("INDEX"),
                "{name}: table scan: {plan}"
            );
        }
    }
}

#[tokio::test]
async fn jobs_waiting_for_their_back_off_are_not_claimed() {
    let t = TestEnv::start().await;
    let created = t.enqueue(1).await;
    t.conn
        .execute(
            "UPDATE processing_jobs SET run_after = ?1 WHERE id = ?2",
            (
                shared::time::format(t.conn.now() + chrono::Duration::hours(1)),
                created[0].1.id,
            ),
        )
        .await
        .unwrap();

    assert!(Queue::new(QueueConfig::default())
        .claim(&t.conn, "w", 5)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn has_claimable_sees_a_due_job_but_not_a_waiting_or_running_one() {
    // Arrange: one job, waiting for its back-off.
    let t = TestEnv::start().await;
    let q = Queue::new(QueueConfig::default());
    let created = t.enqueue(1).await;
    let set_run_after = |at: String| {
        let conn = &t.conn;
        let id = created[0].1.id;
        async move {
            conn.execute(
                "UPDATE processing_jobs SET run_after = ?1 WHERE id = ?2",
                (at, id),
            )
            .await
            .unwrap();
        }
    };
    set_run_after(shared::time::format(
        t.conn.now() + chrono::Duration::hours(1),
    ))
    .await;

    // Act + Assert: waiting, then due, then running.
    assert!(!q.has_claimable(&t.conn).await.unwrap());
    set_run_after(shared::time::format(t.conn.now())).await;
    assert!(q.has_claimable(&t.conn).await.unwrap());
    assert_eq!(q.claim(&t.conn, "w", 5).await.unwrap().len(), 1);
    assert!(!q.has_claimable(&t.conn).await.unwrap());
}

#[tokio::test]
async fn polling_an_idle_queue_takes_no_write_lock() {
    // Arrange: a queue with nothing due or expired, and another process holding the write lock.
    let t = TestEnv::start().await;
    let q = Queue::new(QueueConfig::default());
    let other = t.open().await;
    let writer = other.connect().await.unwrap();
    writer.execute("BEGIN IMMEDIATE", ()).await.unwrap();

    // Act: what an idle worker does each poll.
    let started = std::time::Instant::now();
    let reaped = q.reap(&t.conn).await;
    let claimable = q.has_claimable(&t.conn).await;
    let waited = started.elapsed();
    writer.execute("ROLLBACK", ()).await.unwrap();

    // Assert: both answered without waiting for the writer (a write would wait up to
    // db::BUSY_TIMEOUT, 5 s, and then fail with SQLITE_BUSY).
    let reaped = reaped.unwrap();
    assert!(reaped.requeued.is_empty() && reaped.failed.is_empty());
    assert!(!claimable.unwrap());
    assert!(waited < db::BUSY_TIMEOUT / 2, "waited {waited:?}");
}

#[tokio::test]
async fn the_reaper_still_requeues_an_expired_lease_after_its_read() {
    // Arrange: a running job whose lease has expired.
    let t = TestEnv::start().await;
    let q = queue_with_lease(Duration::from_secs(60));
    let id = t.enqueue(1).await[0].1.id;
    q.claim(&t.conn, "w", 1).await.unwrap();
    t.clock.advance(Duration::from_secs(61));

    // Act
    let reaped = q.reap(&t.conn).await.unwrap();

    // Assert
    assert_eq!(reaped.requeued, vec![id]);
    assert_eq!(t.job(id).await.status, JobStatus::Queued);
}

#[tokio::test]
async fn the_idle_poll_reads_walk_their_partial_indexes() {
    let t = TestEnv::start().await;
    t.enqueue(10).await;
    for (sql, index) in [
        (CLAIMABLE_SQL, "processing_jobs_claimable"),
        (EXPIRED_SQL, "processing_jobs_leases"),
    ] {
        let plan = db::query_all(&t.conn, &format!("EXPLAIN QUERY PLAN {sql}"), ["x"], |r| {
            db::text(r, 3)
        })
        .await
        .unwrap()
        .join("\n");
        assert!(plan.contains(&format!("INDEX {index}")), "{plan}");
        assert!(!plan.contains("SCAN processing_jobs"), "table scan: {plan}");
    }
}

/// `n` videos with queued jobs for a new user `email`: their job ids, in order.
async fn backlog_of(t: &TestEnv, email: &str, n: usize) -> Vec<i64> {
    let user = repo::users::insert(&t.conn, email, "not-a-real-hash")
        .await
        .unwrap()
        .unwrap()
        .id;
    let items: Vec<_> = (0..n).map(|i| testkit::seed::new_video(user, i)).collect();
    testkit::seed::videos_with_jobs(&t.conn, &items)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, job)| job.id)
        .collect()
}

#[tokio::test]
async fn a_job_submitted_behind_another_users_backlog_is_claimed_by_the_next_claim() {
    // Arrange: Ada has 1,000 jobs queued; workers took the first four
    let t = TestEnv::start().await;
    backlog_of(&t, "ada@example.com", 1_000).await;
    let q = Queue::new(QueueConfig::default());
    q.claim(&t.conn, "w", 4).await.unwrap();

    // Act: Bob submits one job
    let bobs = backlog_of(&t, "bob@example.com", 1).await[0];
    let next = q.claim(&t.conn, "w", 4).await.unwrap();

    // Assert: at most one claim's worth of Ada's jobs goes before it
    let ids: Vec<i64> = next.iter().map(|j| j.id()).collect();
    assert!(ids.contains(&bobs), "{ids:?} lacks Bob's {bobs}");
}

#[tokio::test]
async fn users_with_backlogs_take_turns_one_job_each_in_the_order_each_submitted() {
    // Arrange: Ada queues 5 jobs, then Bob queues 5
    let t = TestEnv::start().await;
    let ada = backlog_of(&t, "ada@example.com", 5).await;
    let bob = backlog_of(&t, "bob@example.com", 5).await;
    let q = Queue::new(QueueConfig::default());

    // Act: claims one at a time
    let mut order = Vec::new();
    for _ in 0..10 {
        order.extend(
            q.claim(&t.conn, "w", 1)
                .await
                .unwrap()
                .iter()
                .map(|j| j.id()),
        );
    }

    // Assert
    let turns: Vec<i64> = ada.iter().zip(&bob).flat_map(|(a, b)| [*a, *b]).collect();
    assert_eq!(order, turns);
}

#[tokio::test]
async fn a_retried_job_keeps_its_turn_and_goes_first_once_its_back_off_ends() {
    // Arrange: Ada's first job failed once and waits out its back-off behind her other jobs
    let t = TestEnv::start().await;
    let ada = backlog_of(&t, "ada@example.com", 3).await;
    let q = Queue::new(QueueConfig::default());
    let first = q.claim(&t.conn, "w", 1).await.unwrap().pop().unwrap();
    let FailOutcome::Retrying { run_after } = q.fail(&t.conn, &first, "flaky", true).await.unwrap()
    else {
        panic!("retrying")
    };

    // Act
    let during = q.claim(&t.conn, "w", 1).await.unwrap().pop().unwrap();
    let wait = (run_after - t.conn.now()).to_std().unwrap_or_default();
    t.clock.advance(wait + Duration::from_millis(1));
    let after = q.claim(&t.conn, "w", 1).await.unwrap().pop().unwrap();

    // Assert
    assert_eq!(during.id(), ada[1], "not claimable during its back-off");
    assert_eq!(after.id(), ada[0], "first again once it is due");
}
