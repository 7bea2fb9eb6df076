"""Redis and PostgreSQL taken away mid-run: nothing lost, nothing stuck, nothing run twice."""

from __future__ import annotations

import time

import pytest
from redis import Redis

from .rig import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def assert_each_ran_once_and_attempts_agree(rig, ids, in_flight=frozenset()):
    """Each job ran exactly once, with one attempt. `in_flight`: jobs a worker held when Redis
    went away; the worker may have been taken down before the function started, so those
    ran at most as often as their attempts say, and, at-least-once, the clock may have
    requeued them once (an attempt `lost`, then one that ran): every run has its attempt row."""
    ran = rig.executions()
    ids = [i for i in ids if i not in in_flight]
    if in_flight:
        counted = rig.rows("SELECT r.id, r.attempts, count(a.id) AS attempt_rows FROM jobs_backgroundtaskrecord r "
                           "LEFT JOIN jobs_taskattempt a ON a.record_id = r.id WHERE r.id = ANY(%s::uuid[]) "
                           "GROUP BY r.id", list(in_flight))
        assert all(ran[str(r["id"])] <= r["attempts"] == r["attempt_rows"] <= 2 for r in counted), counted
    rows = rig.rows("SELECT r.id, r.attempts, count(a.id) AS attempt_rows, "
                    "count(a.id) FILTER (WHERE a.outcome = 'running') AS open_attempts "
                    "FROM jobs_backgroundtaskrecord r LEFT JOIN jobs_taskattempt a ON a.record_id = r.id "
                    "WHERE r.id = ANY(%s::uuid[]) GROUP BY r.id", list(ids))
    assert len(rows) == len(ids)
    assert [(str(r["id"]), ran[str(r["id"])], r["attempts"]) for r in rows if ran[str(r["id"])] != 1] == [], \
        "(id, executions, attempts) of jobs that did not run exactly once"
    wrong = [str(r["id"]) for r in rows if r["attempts"] != 1 or r["attempt_rows"] != 1 or r["open_attempts"]]
    detail = rig.rows("SELECT record_id, number, execution_id, outcome, worker_name, pid, started_at, finished_at, "
                      "error_type FROM jobs_taskattempt WHERE record_id = ANY(%s::uuid[]) ORDER BY record_id, number",
                      wrong) if wrong else []
    assert wrong == [], detail


def test_redis_restarted_empty_while_500_rows_are_pending_all_complete(rig):
    ids = rig.drive("enqueue_work", count=600, seconds=0.02, many=True)
    workers = [rig.start_worker(), rig.start_worker()]
    rig.start_reconciler()
    wait_until(lambda: rig.status_counts().get("pending", 0) <= 500, timeout=60, interval=0.05,
               message="the workers to take the first 100 jobs")
    pending_ids = {str(r["id"]) for r in rig.rows("SELECT id FROM jobs_backgroundtaskrecord WHERE status = 'pending'")}
    pending = len(pending_ids)
    before = Redis.from_url(rig.servers.redis.url).info("server")["run_id"]
    down = rig.servers.restart_redis_empty()  # killed: no save, so it comes back empty
    restarted = time.monotonic()
    # A new server process, without persistence: it came back empty. (Not a look at its queue:
    # the reconcile loop may already be pushing the lost jobs again by the time the test looks.)
    assert Redis.from_url(rig.servers.redis.url).info("server")["run_id"] != before
    # RQ quits a worker whose Redis call fails outside its dequeue loop (e.g. marking itself idle
    # after a job); a process manager starts it again, and so does this loop.
    wait_until(lambda: (rig.supervise(), rig.active_count() == 0)[1], timeout=150,
               interval=0.5, message="every job to end")
    took = time.monotonic() - restarted
    repushed = sum(log.read_text().count("pushed again") for log in rig.tmp.glob("reconcile-*.log"))
    done = {str(r["id"]): r for r in rig.rows("SELECT id, status, error_type FROM jobs_backgroundtaskrecord")}
    completed = [i for i in ids if done[i]["status"] == "completed"]
    # A job running at the restart ran, but Redis lost its record: requeued (at-least-once) and
    # completed, or failed as WorkerLost.
    others = {(done[i]["status"], done[i]["error_type"]) for i in ids if done[i]["status"] != "completed"}
    print(f"\nredis restarted empty: {pending} rows pending at the restart (Redis down {down:.2f} s); "
          f"{len([i for i in pending_ids if i in completed])}/{pending} of them completed; "
          f"{len(completed)}/{len(ids)} completed in all, {len(ids) - len(completed)} running at the restart "
          f"settled as {sorted(others) or '-'}; {repushed} pushed again by reconcile, 0 lost, "
          f"each ran once; all done {took:.1f} s after the restart; {rig.restarts} of 2 workers exited "
          f"with Redis and were restarted")
    # A row still reads pending for the millisecond between a worker taking its job and
    # writing the start: such a job was running at the restart, not waiting, and ends like the
    # other running ones. There is at most one per worker.
    in_flight = pending_ids - set(completed)
    assert len(in_flight) <= len(workers), "a job pending at the restart did not complete"
    assert all((done[i]["status"], done[i]["error_type"]) == ("failed", "WorkerLost") for i in in_flight)
    assert others <= {("failed", "WorkerLost")}
    requeued = {str(r["record_id"]) for r in rig.rows(
        "SELECT DISTINCT record_id FROM jobs_taskattempt WHERE outcome IN ('lost', 'interrupted')")}
    lost = {i for i in ids if done[i]["status"] != "completed"} | (requeued & set(ids))
    assert len(lost) <= len(workers), "more jobs lost their run than there were workers to run them"
    assert_each_ran_once_and_attempts_agree(rig, ids, in_flight=lost)
    assert repushed >= pending - 10  # a few may have been popped just before the restart
    assert workers


def test_postgres_stopped_for_10_s_mid_run_no_crash_loop_and_every_job_recorded(rig):
    ids = rig.drive("enqueue_work", count=300, seconds=0.1, many=True)
    workers = [rig.start_worker(), rig.start_worker()]
    pids = [w.pid for w in workers]
    rig.start_reconciler()
    wait_until(lambda: rig.status_counts().get("completed", 0) >= 40, timeout=60, interval=0.1,
               message="the run to get going")
    rig.servers.pg.stop()
    stopped_at = time.time()
    time.sleep(10)
    rig.servers.pg.start()
    back_at, back = time.time(), time.monotonic()
    wait_until(lambda: rig.active_count() == 0, timeout=120, interval=0.5,
               message=lambda: f"every row to end (now {rig.status_counts()})")
    took = time.monotonic() - back
    in_window = sum(1 for line in rig.execution_log.read_text().splitlines()
                    if stopped_at <= float(line.split()[2]) <= back_at)
    failed_writes = rig.worker_log().count("could not record")
    counts = rig.status_counts()
    print(f"\npostgres stopped {back_at - stopped_at:.1f} s: {in_window} jobs ran while it was down, "
          f"{counts.get('completed', 0)}/{len(ids)} completed, 0 stuck, {failed_writes} hook writes failed and "
          f"were repaired; workers restarted 0 times; every row final {took:.1f} s after the database returned")
    assert counts == {"completed": len(ids)}
    assert in_window > 0, "no job ran during the outage: the scenario proved nothing"
    assert failed_writes > 0
    assert [w.pid for w in workers] == pids and all(w.process.poll() is None for w in workers), \
        "a worker exited (a process manager would crash-loop it)"
    assert_each_ran_once_and_attempts_agree(rig, ids)


def test_redis_unreachable_at_enqueue_rows_stay_pending_then_are_pushed(rig):
    workers = [rig.start_worker(), rig.start_worker()]
    rig.start_reconciler()
    rig.wait_ready(*workers)
    rig.servers.stop_redis()
    single = rig.drive("enqueue_work", count=50, seconds=0.0)
    many = rig.drive("enqueue_work", count=50, seconds=0.0, many=True)
    ids = single + many
    rows = rig.rows("SELECT status, pushed_at FROM jobs_backgroundtaskrecord")
    assert len(rows) == 100 and all(r["status"] == "pending" and r["pushed_at"] is None for r in rows)
    time.sleep(3)
    assert rig.status_counts() == {"pending": 100}
    rig.servers.start_redis()
    back = time.monotonic()
    wait_until(lambda: rig.value("SELECT count(*) FROM jobs_backgroundtaskrecord WHERE pushed_at IS NOT NULL")
               == 100, timeout=60, message="reconcile to push every row")
    pushed_after = time.monotonic() - back
    wait_until(lambda: rig.status_counts() == {"completed": 100}, timeout=90, interval=0.5,
               message=lambda: f"every job to complete (now {rig.status_counts()})")
    took = time.monotonic() - back
    print(f"\nredis unreachable at enqueue: 100/100 rows stayed pending (50 enqueue, 50 enqueue_many); "
          f"all pushed {pushed_after:.1f} s and completed {took:.1f} s after Redis returned; each ran once")
    assert_each_ran_once_and_attempts_agree(rig, ids)
    assert all(w.process.poll() is None for w in workers), "a worker died while Redis was away"
