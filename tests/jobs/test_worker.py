"""The tracking worker keeps each row in step with RQ, attempt by attempt."""

import os
import signal
import threading

import pytest
from django.db import connection
from rq.job import Job, JobStatus

from jobs import api, demo
from jobs.models import BackgroundTaskRecord, Status
from jobs.worker import SimpleWorker, parse_exc_string
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def fresh(record):
    record.refresh_from_db()
    return record


def unprintable() -> int:
    """A job whose result neither str() nor repr() can render (Python 3.11's int limit)."""
    return 10**5000


def test_success_records_result_duration_worker_and_one_attempt(drain):
    record = api.enqueue(demo.add, 2, 3)
    drain()
    record = fresh(record)
    assert record.status == Status.COMPLETED
    assert record.result == 5 and record.attempts == 1 and record.duration_ms is not None
    assert record.worker_name and record.hostname and record.pid and record.pid != os.getpid()
    assert record.started_at <= record.finished_at
    attempt = record.attempt_set.get()
    assert (attempt.number, attempt.outcome, attempt.worker_name) == (1, "completed", record.worker_name)


def test_failure_records_type_message_and_full_traceback(drain):
    record = api.enqueue(demo.fail, "disk full")
    drain()
    record = fresh(record)
    assert (record.status, record.error_type, record.error_message) == (Status.FAILED, "ValueError", "disk full")
    assert record.traceback.startswith("Traceback") and 'jobs/demo.py", line' in record.traceback
    assert record.attempt_set.get().traceback == record.traceback


def test_retries_leave_one_attempt_row_with_its_own_traceback_each(drain):
    record = api.enqueue(demo.fail, "again", retries=2)
    drain()
    record = fresh(record)
    assert record.status == Status.FAILED and record.attempts == 3
    attempts = list(record.attempt_set.all())
    assert [a.number for a in attempts] == [1, 2, 3]
    assert all(a.outcome == "failed" and "ValueError: again" in a.traceback for a in attempts)


def test_retries_with_backoff_wait_between_attempts_then_succeed(start_worker, tmp_path):
    marker = tmp_path / "count"
    record = api.enqueue(demo.fail_until, str(marker), 2, retries=2, retry_intervals=[1, 2])
    start_worker()
    wait_for(lambda: fresh(record).status == Status.COMPLETED, timeout=60, message="the third attempt")
    assert record.attempts == 3 and record.result == "succeeded after 2 failures"
    first, second, third = record.attempt_set.all()
    assert "attempt 1 fails on purpose" in first.traceback and "attempt 2 fails on purpose" in second.traceback
    assert third.outcome == "completed" and third.traceback == ""
    # RQ's scheduler works in whole seconds, so a 1 s interval may be served a little early.
    assert (second.started_at - first.finished_at).total_seconds() >= 0.5, "backoff interval 1 s"
    assert (third.started_at - second.finished_at).total_seconds() >= 1.5, "backoff interval 2 s"


def test_waiting_for_a_retry_shows_pending_with_the_next_attempt_time(start_worker, tmp_path):
    record = api.enqueue(demo.fail_until, str(tmp_path / "n"), 1, retries=1, retry_intervals=[30])
    start_worker()
    wait_for(lambda: fresh(record).attempts == 1 and record.status == Status.PENDING, timeout=30,
             message="the first attempt to fail")
    assert record.scheduled_for is not None
    assert 20 < (record.scheduled_for - record.attempt_set.get().finished_at).total_seconds() <= 31
    assert record.error_type == "RuntimeError"


def test_timeout_ends_failed_with_a_clear_message(drain):
    record = api.enqueue(demo.sleep, 10, timeout=1)
    drain()
    record = fresh(record)
    assert (record.status, record.error_type, record.error_message) == (
        Status.FAILED, "JobTimeoutException", "timed out after 1 s")


def test_a_function_that_no_longer_imports_fails_clearly_and_the_worker_goes_on(drain):
    gone = api.enqueue("jobs.demo.renamed_long_ago")
    missing_module = api.enqueue("jobs.no_such_module.func")
    after = api.enqueue(demo.add, 1, 1)
    drain()
    assert fresh(gone).status == Status.FAILED and "renamed_long_ago" in gone.error_message
    assert fresh(missing_module).status == Status.FAILED and "no_such_module" in missing_module.traceback
    assert fresh(after).status == Status.COMPLETED


def test_killed_work_horse_fails_the_attempt(drain):
    record = api.enqueue(demo.kill_self)
    drain()
    record = fresh(record)
    assert (record.status, record.error_type) == (Status.FAILED, "WorkHorseKilled")
    assert "signal 9" in record.error_message


def test_killed_work_horse_with_retries_left_goes_back_to_pending_and_runs_again(drain, tmp_path):
    record = api.enqueue(demo.kill_self, retries=1)
    drain()
    record = fresh(record)
    assert record.status == Status.FAILED and record.attempts == 2
    assert [a.outcome for a in record.attempt_set.all()] == ["failed", "failed"]


def test_progress_reported_from_inside_the_job_lands_on_the_row(start_worker):
    record = api.enqueue(demo.long_report, steps=40, step_seconds=0.1)
    start_worker()
    wait_for(lambda: 0 < (fresh(record).progress or 0) < 1, timeout=30, message="partial progress")
    assert record.status == Status.RUNNING and record.progress_message.startswith("step ")
    wait_for(lambda: fresh(record).status == Status.COMPLETED, timeout=30, message="completion")
    assert record.progress == 1.0 and record.result == {"steps": 40}


def test_simple_worker_keeps_the_rows_too(drain):
    ok = api.enqueue(demo.add, 1, 2)
    bad = api.enqueue(demo.fail, retries=1)
    drain(worker_class=SimpleWorker)
    assert fresh(ok).status == Status.COMPLETED and ok.result == 3
    assert fresh(bad).status == Status.FAILED and bad.attempts == 2


def test_cancel_a_running_job_in_a_real_rqworker(start_worker, redis_conn):
    record = api.enqueue(demo.sleep, 60)
    worker = start_worker()
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    assert api.cancel(record) == "stopping"
    assert fresh(record).cancel_requested_at is not None
    wait_for(lambda: fresh(record).status == Status.CANCELLED, timeout=10, message="the stop to land")
    assert Job.fetch(str(record.pk), connection=redis_conn).get_status() == JobStatus.STOPPED
    assert record.attempt_set.get().outcome == "cancelled"
    # The worker survives the stop and runs the next job.
    after = api.enqueue(demo.add, 1, 1)
    wait_for(lambda: fresh(after).status == Status.COMPLETED, timeout=30, message="the next job")
    assert worker.process.poll() is None


def test_cancel_a_job_started_before_its_row_says_so_stops_it(start_worker, redis_conn):
    """The worker writes the start a moment after the job starts: a cancel in between must
    stop the job, not mark a job that keeps running cancelled."""
    from jobs.models import AuditEntry

    record = api.enqueue(demo.sleep, 60)
    worker = start_worker()
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    BackgroundTaskRecord.objects.filter(pk=record.pk).update(status=Status.PENDING)  # as if not written yet
    assert api.cancel(record) == "stopping"
    wait_for(lambda: fresh(record).status == Status.CANCELLED, timeout=10, message="the stop to land")
    assert Job.fetch(str(record.pk), connection=redis_conn).get_status() == JobStatus.STOPPED
    outcomes = list(AuditEntry.objects.filter(record_id=record.pk).order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["stopping", "stopped"]
    assert worker.process.poll() is None


def test_cancelled_after_dequeue_never_runs(drain, redis_conn):
    """RQ's cancel-after-dequeue race (rq/rq#2160): the worker's gate skips the job."""
    from jobs.connection import get_queue
    from jobs.worker import Worker

    record = api.enqueue(demo.add, 1, 1)
    queue = get_queue("default")
    worker = Worker([queue], connection=redis_conn)
    job, dequeued_from = worker.dequeue_job_and_maintain_ttl(None)
    api.cancel(record)
    worker.execute_job(job, dequeued_from)
    record = fresh(record)
    assert record.status == Status.CANCELLED and record.attempts == 0


def test_a_database_outage_during_hooks_does_not_fail_the_job_and_reconcile_converges(
        start_worker, redis_conn, settings):
    from jobs.reconcile import reconcile_records

    record = api.enqueue(demo.add, 20, 22)
    unreachable = ("postgres://postgres@127.0.0.1:1/nowhere" if connection.vendor == "postgresql"
                   else "sqlite:////nonexistent-dir/jobdeck.sqlite3")
    worker = start_worker(env={"DATABASE_URL": unreachable})
    wait_for(lambda: Job.fetch(str(record.pk), connection=redis_conn).get_status() == JobStatus.FINISHED,
             timeout=30, message="RQ to finish the job")
    # The writer thread tries (and logs) a moment after the job ended: the worker goes on meanwhile.
    wait_for(lambda: "could not record" in worker.output(), timeout=30, message="the failed write to be logged")
    assert fresh(record).status == Status.PENDING, "no hook could write"
    assert worker.process.poll() is None, "a database outage must not take the worker down"
    settings.JOBS_PENDING_GRACE_SECONDS = 0
    report = reconcile_records()
    assert report.synced == [str(record.pk)]
    record = fresh(record)
    assert record.status == Status.COMPLETED and record.result == 42 and record.attempts == 1
    assert record.attempt_set.get().outcome == "completed"


def test_two_concurrent_retries_make_exactly_one_new_attempt(drain):
    record = api.enqueue(demo.fail)
    drain()
    assert fresh(record).status == Status.FAILED
    barrier = threading.Barrier(2)
    outcomes = []

    def click():
        from django.db import connection as thread_connection

        handle = BackgroundTaskRecord.objects.get(pk=record.pk)
        barrier.wait()
        try:
            api.retry(handle)
            outcomes.append("retried")
        except api.ActionNotAllowed:
            outcomes.append("refused")
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused", "retried"]
    drain()
    assert fresh(record).attempts == 2 and record.attempt_set.count() == 2


@pytest.mark.parametrize("exc_string, expected", [
    ("Traceback (most recent call last):\n  File \"x.py\", line 1, in f\n    boom()\nValueError: bad\n",
     ("ValueError", "bad")),
    ("Traceback (most recent call last):\n  File \"x.py\", line 1\nmod.CustomError: two\nlines\n",
     ("CustomError", "two\nlines")),
    ("Work-horse terminated unexpectedly; waitpid returned 9 (signal 9); ",
     ("WorkHorseKilled", "work horse killed by signal 9 (SIGKILL) before the job finished")),
    ("", ("UnknownError", "the job failed without an error message")),
])
def test_parse_exc_string(exc_string, expected):
    assert parse_exc_string(exc_string) == expected


def test_worker_hooks_tolerate_a_missing_row(drain, redis_conn):
    """A job whose row was deleted (or never committed) still runs; nothing raises into RQ."""
    record = api.enqueue(demo.add, 1, 1)
    BackgroundTaskRecord.objects.filter(pk=record.pk).delete()
    drain()
    assert Job.fetch(str(record.pk), connection=redis_conn).get_status() == JobStatus.FINISHED


def test_sigterm_lets_the_worker_finish_its_job_and_exit(start_worker):
    record = api.enqueue(demo.sleep, 2)
    worker = start_worker()
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    worker.process.send_signal(signal.SIGTERM)  # warm shutdown
    worker.process.wait(30)
    assert fresh(record).status == Status.COMPLETED


def test_results_and_errors_no_column_can_hold_are_stored_readably(drain):
    ok = api.enqueue(demo.awkward_text)
    bad = api.enqueue(demo.awkward_failure)
    drain()
    assert fresh(ok).status == Status.COMPLETED and ok.result["text"].startswith("before\ufffdafter")
    assert fresh(bad).status == Status.FAILED and "\x00" not in bad.error_message
    assert bad.error_message.startswith("bad byte \ufffd here") and "\x00" not in bad.traceback


def test_an_idle_worker_outlives_redis_going_away_between_its_waits(private_redis, monkeypatch):
    """RQ retries a lost Redis only inside its blocking wait; the calls around it (the
    suspension flag, maintenance at start-up, the idle state before each wait) used to end
    the worker. A fault run caught it: Redis killed just after the workers registered."""
    from redis import Redis
    from rq import Queue

    from jobs import worker as worker_module
    from jobs.redis_server import RedisServer
    from jobs.worker import Worker

    monkeypatch.setattr(worker_module, "REDIS_RETRY_SECONDS", 0.2)
    connection = Redis.from_url(private_redis.url)
    queue = Queue("default", connection=connection)
    worker = Worker([queue], connection=connection, name="outage-worker")
    worker.register_birth()
    private_redis.kill()
    private_redis.stop()

    worker.check_for_suspension(False)  # neither raises while Redis is away
    worker.run_maintenance_tasks()
    assert worker.last_cleaned_at is None, "maintenance is still due"
    got: list = []
    waiting = threading.Thread(target=lambda: got.append(worker.dequeue_job_and_maintain_ttl(30)), daemon=True)
    waiting.start()
    waiting.join(1.5)
    assert waiting.is_alive(), "still waiting for Redis"

    server = RedisServer(port=private_redis.port).start()
    try:
        job = Queue("default", connection=connection).enqueue("jobs.demo.noop")
        waiting.join(30)
        assert got and got[0][0].id == job.id
    finally:
        worker.register_death()
        server.stop()


def test_a_job_a_deploy_interrupts_goes_back_to_its_queue_and_runs_again(start_worker, redis_conn):
    """At-least-once: SIGTERM, then past JOBS_SHUTDOWN_GRACE_SECONDS, the job is stopped and
    requeued; its attempt is `interrupted`, not `failed`, and no retry is used up."""
    record = api.enqueue(demo.sleep, 4)
    first = start_worker(env={"JOBS_SHUTDOWN_GRACE_SECONDS": "1"})
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    first.process.send_signal(signal.SIGTERM)  # a deploy
    assert first.process.wait(30) is not None
    record = fresh(record)
    assert (record.status, record.interruptions, record.retries_left) == (Status.PENDING, 1, 1)
    assert list(record.attempt_set.values_list("outcome", "error_type")) == [("interrupted", "WorkerShutdown")]
    assert Job.fetch(str(record.pk), connection=redis_conn).get_status() == JobStatus.QUEUED
    start_worker()
    wait_for(lambda: fresh(record).status == Status.COMPLETED, timeout=60, message="the job to run again")
    assert list(record.attempt_set.values_list("outcome", flat=True)) == ["interrupted", "completed"]
    from dashboard.timeline import timeline

    ended = [e for e in timeline(record, list(record.attempt_set.all())) if e.label == "attempt 1 interrupted"]
    assert [e.detail for e in ended] == ["WorkerShutdown · requeued"]


def test_an_at_most_once_job_a_deploy_interrupts_fails_as_before(start_worker):
    record = api.enqueue(demo.sleep, 30, at_most_once=True)
    worker = start_worker(env={"JOBS_SHUTDOWN_GRACE_SECONDS": "1"})
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(30)
    record = fresh(record)
    assert (record.status, record.error_type, record.interruptions) == (Status.FAILED, "WorkerShutdown", 0)


def test_a_job_interrupted_more_than_max_interruptions_times_fails(start_worker):
    """A job that kills its worker cannot loop: past JOBS_MAX_INTERRUPTIONS requeues, it fails."""
    record = api.enqueue(demo.sleep, 30)
    BackgroundTaskRecord.objects.filter(pk=record.pk).update(interruptions=3)  # as after three deploys
    worker = start_worker(env={"JOBS_SHUTDOWN_GRACE_SECONDS": "1", "JOBS_MAX_INTERRUPTIONS": "3"})
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(30)
    assert (fresh(record).status, record.error_type) == (Status.FAILED, "WorkerShutdown")


def test_an_unprintable_result_costs_no_other_jobs_row(drain):
    """Found with hostile jobs: `10**5000` made the result capping raise outside the writer's
    handling, the batch of queued writes was dropped, and the next ordinary job's row stayed
    pending. Now that row completes, and the unprintable one is stored as a bounded preview."""
    before = api.enqueue(demo.add, 1, 1)
    bad = api.enqueue("tests.jobs.test_worker.unprintable")
    after = api.enqueue(demo.add, 2, 2)
    drain()
    assert [(fresh(r).status, r.result) for r in (before, after)] == [(Status.COMPLETED, 2), (Status.COMPLETED, 4)]
    bad = fresh(bad)
    assert bad.status == Status.COMPLETED and bad.attempts == 1
    assert bad.result["note"] and len(bad.result.get("repr") or bad.result.get("preview")) <= 65536
