"""Races against real workers on PostgreSQL: rollback, concurrent retries, cancel against completion."""

from __future__ import annotations

import time

import pytest

from .rig import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def test_a_rolled_back_transaction_runs_nothing(rig):
    workers = [rig.start_worker(), rig.start_worker()]
    rig.wait_ready(*workers)
    outcome = rig.drive("rolled_back")
    kept = outcome["kept"]
    # Queues are FIFO: once the job committed after the rollbacks has run, a leaked one would have too.
    wait_until(lambda: rig.value("SELECT status FROM jobs_backgroundtaskrecord WHERE id = %s", kept) == "completed",
               timeout=30, message="the committed job to run")
    time.sleep(1)
    ran = rig.executions()
    leaked = [job_id for job_id in outcome["rolled_back"] if ran[job_id]]
    print(f"\nrolled back: {len(outcome['rolled_back'])} jobs enqueued in rolled-back transactions "
          f"(enqueue, enqueue_many, a savepoint), {outcome['rows_left']} rows left, {len(leaked)} ran; "
          f"the committed one ran once")
    assert outcome["rows_left"] == 0 and leaked == [] and ran[kept] == 1
    assert sum(ran.values()) == 1


def test_20_concurrent_retries_of_one_job_make_one_new_attempt(rig):
    worker = rig.start_worker()
    [record_id] = rig.drive("enqueue_work", count=1, fail_first=1)  # fails once, succeeds when retried
    wait_until(lambda: rig.value("SELECT status FROM jobs_backgroundtaskrecord WHERE id = %s", record_id) == "failed",
               timeout=30, message="the job to fail")
    outcomes = rig.drive("concurrent_retries", record_id=record_id, clicks=20)
    wait_until(lambda: rig.value("SELECT status FROM jobs_backgroundtaskrecord WHERE id = %s", record_id)
               == "completed", timeout=30, message="the retried job to complete")
    time.sleep(1)
    row = rig.rows("SELECT attempts FROM jobs_backgroundtaskrecord WHERE id = %s", record_id)[0]
    audited = rig.value("SELECT count(*) FROM jobs_auditentry WHERE action = 'retry' AND record_id = %s", record_id)
    ran = rig.executions()[record_id]
    print(f"\n20 concurrent retries: {outcomes.count('retried')} accepted, {outcomes.count('refused')} refused; "
          f"{row['attempts']} attempts, ran {ran} times, {audited} retry in the audit log")
    assert outcomes == ["refused"] * 19 + ["retried"]
    assert row["attempts"] == 2 and ran == 2 and audited == 1
    assert worker.process.poll() is None


CANCEL_RACES = 10


def test_cancel_racing_completion_leaves_one_consistent_state_and_the_audit_says_which(rig):
    """Each job runs ~0.5 s; the cancel arrives from just before to just after its end."""
    from redis import Redis

    redis = Redis.from_url(rig.servers.redis.url)
    workers = [rig.start_worker(), rig.start_worker()]
    rig.wait_ready(*workers)
    rig.start_reconciler()
    seen = {}
    for number in range(CANCEL_RACES):
        # Cancels from 0.35 s to 0.65 s into a 0.5 s job: before, at and after its end.
        race = rig.drive("cancel_race", seconds=0.5, after=0.35 + 0.3 * number / (CANCEL_RACES - 1))
        record_id = race["id"]
        wait_until(lambda: rig.value("SELECT status FROM jobs_backgroundtaskrecord WHERE id = %s", record_id)
                   in ("completed", "cancelled", "failed"), timeout=20, message="the job to end")
        time.sleep(0.3)
        row = rig.rows("SELECT status FROM jobs_backgroundtaskrecord WHERE id = %s", record_id)[0]
        in_redis = (redis.hget(f"rq:job:{record_id}", "status") or b"").decode()
        audit = rig.rows("SELECT outcome FROM jobs_auditentry WHERE record_id = %s ORDER BY id", record_id)
        seen[record_id] = (race["answer"].split(":")[0], row["status"], in_redis, [a["outcome"] for a in audit])
    final = [s[1] for s in seen.values()]
    answers = [s[0] for s in seen.values()]
    print(f"\ncancel racing completion: {CANCEL_RACES} races; {answers.count('refused')} refused (already "
          f"completed), {final.count('completed') - answers.count('refused')} stop too late (completed, audited "
          f"too-late), {final.count('cancelled')} stopped (cancelled, audited stopped); row, Redis and audit agree")
    for record_id, (answer, status, in_redis, audited) in seen.items():
        story = (record_id, answer, status, in_redis, audited)
        assert status in ("completed", "cancelled"), story
        assert {"completed": "finished", "cancelled": "stopped"}[status] == in_redis or \
            (status == "cancelled" and in_redis == "canceled"), story
        if answer == "refused":  # the job had already completed: nothing to cancel
            assert status == "completed" and audited in ([], ["refused"]), story
        else:
            assert audited and audited[0] in ("stopping", "cancelled"), story
            if status == "completed":  # the stop came too late, and the audit log says so
                assert audited == ["stopping", "too-late"], story
            else:
                assert audited in (["stopping", "stopped"], ["cancelled"]), story


def test_cancelling_a_running_job_stops_it_within_5_s(rig):
    worker = rig.start_worker()
    rig.wait_ready(worker)
    took = []
    for _ in range(3):
        [record_id] = rig.drive("enqueue_work", count=1, seconds=60)
        wait_until(lambda: rig.value("SELECT status FROM jobs_backgroundtaskrecord WHERE id = %s", record_id)
                   == "running", timeout=30, message="the job to start")
        began = time.monotonic()
        assert rig.drive("cancel", record_id=record_id) == "stopping"
        wait_until(lambda: rig.value("SELECT status FROM jobs_backgroundtaskrecord WHERE id = %s", record_id)
                   == "cancelled", timeout=10, interval=0.05, message="the stop to land")
        took.append(time.monotonic() - began)
    print(f"\ncancel a running job: stopped in {', '.join(f'{t:.1f}' for t in took)} s "
          f"(including ~1 s to start the cancelling process); limit 5 s")
    assert max(took) < 5
    assert worker.process.poll() is None
