"""The reconciler: nothing lost, nothing stuck, whatever happened to Redis or the workers."""

import time

import pytest
from django.core.management import call_command
from rq.job import Job, JobStatus

from jobs import api, demo
from jobs.models import Status
from jobs.reconcile import reconcile_records
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def fresh(record):
    record.refresh_from_db()
    return record


@pytest.fixture
def fast_liveness(settings):
    """Workers beat every second; a worker silent for 4 s is lost (production: 10 s and 30 s)."""
    settings.JOBS_HEARTBEAT_SECONDS = 1
    settings.JOBS_WORKER_LOST_AFTER_SECONDS = 4
    settings.JOBS_PENDING_GRACE_SECONDS = 0
    return {"JOBS_HEARTBEAT_SECONDS": "1", "JOBS_WORKER_LOST_AFTER_SECONDS": "4"}


def settle(record, timeout=60):
    """Run reconcile passes, as the clock does, until the row leaves `running`; return seconds taken."""
    started = time.monotonic()

    def settled():
        reconcile_records()
        return fresh(record).status != Status.RUNNING

    wait_for(settled, timeout=timeout, interval=1, message="reconcile to settle the row")
    return time.monotonic() - started


def test_redis_flushed_while_rows_are_pending_they_are_pushed_again_and_complete(private_redis, settings, drain):
    records = [api.enqueue(demo.add, i, 1) for i in range(5)]
    assert all(fresh(r).pushed_at for r in records)
    from jobs.connection import get_connection

    get_connection().flushall()  # our own server: Redis restarted empty
    settings.JOBS_PENDING_GRACE_SECONDS = 0
    report = reconcile_records()
    assert sorted(report.pushed) == sorted(str(r.pk) for r in records)
    drain()
    assert [fresh(r).status for r in records] == [Status.COMPLETED] * 5
    assert [r.attempts for r in records] == [1] * 5
    assert reconcile_records().changed == 0


def test_whole_worker_sigkilled_mid_job_is_requeued_and_runs_again(start_worker, fast_liveness):
    """At-least-once: a job lost with its worker goes back to its queue; its attempt is `lost`,
    not `failed`, and it uses up none of the job's retries."""
    record = api.enqueue(demo.sleep, 3, retries=1)
    first = start_worker(env=fast_liveness)
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    first.kill_group()  # worker and work horse: a host lost
    settle(record)
    record = fresh(record)
    assert (record.status, record.error_type, record.interruptions, record.retries_left) == (
        Status.PENDING, "WorkerLost", 1, 2)
    assert list(record.attempt_set.values_list("outcome", flat=True)) == ["lost"]
    start_worker(env=fast_liveness)
    wait_for(lambda: fresh(record).status == Status.COMPLETED, timeout=60, message="the job to run again")
    assert list(record.attempt_set.values_list("outcome", flat=True)) == ["lost", "completed"]
    assert record.attempts == 2 and record.retries_left == 1, "only the completed run counts as a try"


def test_whole_worker_sigkilled_mid_job_at_most_once_is_settled_as_worker_lost(start_worker, fast_liveness):
    record = api.enqueue(demo.sleep, 120, at_most_once=True)
    worker = start_worker(env=fast_liveness)
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    worker.kill_group()  # worker and work horse: a host lost
    took = settle(record)
    assert took < 60
    record = fresh(record)
    assert (record.status, record.error_type) == (Status.FAILED, "WorkerLost")
    assert "worker lost" in record.error_message
    assert record.attempt_set.get().outcome == "failed"


def test_worker_lost_at_most_once_with_retries_left_uses_a_retry(start_worker, fast_liveness, redis_conn):
    record = api.enqueue(demo.sleep, 3, retries=1, at_most_once=True)
    first = start_worker(env=fast_liveness)
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    first.kill_group()
    settle(record)
    assert fresh(record).status == Status.PENDING and record.error_type == "WorkerLost"
    start_worker(env=fast_liveness)
    wait_for(lambda: fresh(record).status == Status.COMPLETED, timeout=60, message="the retry to complete")
    assert record.attempts == 2
    assert [a.outcome for a in record.attempt_set.all()] == ["failed", "completed"]


def test_killed_work_horse_is_recorded_by_its_worker_at_once(start_worker):
    import os
    import signal

    record = api.enqueue(demo.sleep, 120)
    start_worker()
    wait_for(lambda: fresh(record).status == Status.RUNNING and record.pid, timeout=30, message="the job to start")
    os.kill(record.pid, signal.SIGKILL)  # the OOM killer takes the horse
    wait_for(lambda: fresh(record).status == Status.FAILED, timeout=20, message="the worker to notice")
    assert record.error_type == "WorkHorseKilled"


def test_cancel_requested_but_not_confirmed_is_resent(start_worker, settings):
    settings.JOBS_CANCEL_RESEND_SECONDS = 0
    record = api.enqueue(demo.sleep, 60)
    start_worker()
    wait_for(lambda: fresh(record).status == Status.RUNNING, timeout=30, message="the job to start")
    record.mark_cancel_requested()  # as if the first stop command was lost
    report = reconcile_records()
    assert report.stops_resent == [str(record.pk)]
    wait_for(lambda: fresh(record).status == Status.CANCELLED, timeout=10, message="the resent stop to land")


def test_dry_run_reports_and_changes_nothing(private_redis, settings, capsys):
    record = api.enqueue(demo.add, 1, 1)
    from jobs.connection import get_connection

    get_connection().flushall()
    settings.JOBS_PENDING_GRACE_SECONDS = 0
    call_command("jobs_reconcile", "--dry-run")
    out = capsys.readouterr().out
    assert "would change 1: 1 pushed" in out and str(record.pk) in out
    assert not Job.exists(str(record.pk), connection=get_connection())
    call_command("jobs_reconcile")
    assert "changed 1: 1 pushed" in capsys.readouterr().out
    assert Job.fetch(str(record.pk), connection=get_connection()).get_status() == JobStatus.QUEUED


def test_a_job_lost_between_dequeue_and_start_is_pushed_again(redis_conn, settings, drain):
    """Several queues use BLPOP: a worker dying right after it popped the id leaves the job
    `queued` in Redis but in no list. The reconciler notices and pushes it again."""
    settings.JOBS_PENDING_GRACE_SECONDS = 0
    settings.JOBS_WORKER_LOST_AFTER_SECONDS = 0
    record = api.enqueue(demo.add, 1, 1)
    redis_conn.lrem("rq:queue:default", 0, str(record.pk))  # popped by a worker that then died
    report = reconcile_records()
    assert report.pushed == [str(record.pk)]
    drain()
    assert fresh(record).status == Status.COMPLETED and record.attempts == 1


# --- fencing: the clock's writes are writes like any other --------------------------------

def _started_by_a_worker(record, redis_conn):
    """As a worker does before its start write reaches the database: the job popped, its
    execution opened in Redis, the job marked started. Returns (worker, execution)."""
    from jobs.connection import get_queue
    from jobs.worker import Worker

    worker = Worker([get_queue("default")], connection=redis_conn)
    job, _queue = worker.dequeue_job_and_maintain_ttl(None)
    assert job.id == str(record.pk)
    execution = worker.prepare_execution(job)
    job.set_status(JobStatus.STARTED)
    return worker, execution


def test_the_clock_syncing_a_start_first_never_blanks_what_the_worker_writes(redis_conn, settings):
    """The start write loses the race with the clock's sync from Redis (5 of 70 rows lost their
    host and pid): the clock opens the attempt under RQ's execution id, then the worker's own
    start write fills in what it owns, on the record and on the attempt, and counts nothing twice."""
    from jobs.models import intents

    settings.JOBS_PENDING_GRACE_SECONDS = 0
    record = api.enqueue(demo.sleep, 1)
    worker, execution = _started_by_a_worker(record, redis_conn)
    report = reconcile_records()
    assert report.synced == [str(record.pk)]
    record = fresh(record)
    assert (record.status, record.execution_id, record.hostname, record.pid) == (
        Status.RUNNING, execution.id, "", None)
    intents.Start(record.pk, execution.id, worker_name=worker.name, hostname="host-a", pid=4242).apply()
    record = fresh(record)
    attempt = record.attempt_set.get()
    assert (record.status, record.attempts, record.hostname, record.pid) == (Status.RUNNING, 1, "host-a", 4242)
    assert (attempt.execution_id, attempt.hostname, attempt.pid, attempt.worker_name) == (
        execution.id, "host-a", 4242, worker.name)
    reconcile_records()  # a second pass changes none of it
    assert (fresh(record).hostname, record.pid, record.attempts) == ("host-a", 4242, 1)


def _running_on_a_cut_off_host(settings, **options):
    """A job whose worker started it (start write landed), then lost Redis and the database:
    Redis no longer holds the job and the worker no longer beats."""
    from jobs.models import intents

    settings.JOBS_PENDING_GRACE_SECONDS = 0
    settings.JOBS_WORKER_LOST_AFTER_SECONDS = 0
    record = api.enqueue(demo.add, 2, 2, **options)
    api._delete_rq_job(record)
    started = intents.Start(record.pk, "exec-cut-off", worker_name="gone", hostname="host-b", pid=7)
    assert started.apply()
    return fresh(record)


def test_a_cut_off_worker_that_finishes_after_the_clock_requeued_its_job_lands_late(redis_conn, settings, drain,
                                                                                   client, staff_user):
    """With at-least-once, the clock requeues the job; the cut-off host's late completion goes
    to its own attempt (marked late), the row stays pending, and the requeued copy runs as an
    attempt of its own (before: the late write moved the row to completed and the copy ran
    with no attempt row)."""
    from dashboard.timeline import timeline
    from jobs.models import intents

    record = _running_on_a_cut_off_host(settings, retries=1)
    assert reconcile_records().lost == [str(record.pk)]
    assert fresh(record).status == Status.PENDING
    late = intents.Complete(record.pk, "exec-cut-off", result=4, started_at=record.started_at)
    assert not late.apply() and late.applied == "late"
    record = fresh(record)
    assert (record.status, record.result) == (Status.PENDING, None)
    first = record.attempt_set.get()
    assert (first.outcome, first.late_outcome, first.hostname) == ("lost", "completed", "host-b")
    drain()
    record = fresh(record)
    assert (record.status, record.result, record.attempts) == (Status.COMPLETED, 4, 2)
    assert list(record.attempt_set.values_list("outcome", "late_outcome")) == [("lost", "completed"),
                                                                              ("completed", "")]
    labels = [event.label for event in timeline(record, list(record.attempt_set.all()))]
    assert f"attempt 1 lost, later completed at {first.late_at:%H:%M:%S}" in labels
    assert any("requeued" in event.detail for event in timeline(record, list(record.attempt_set.all())))
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    staff_user.user_permissions.add(Permission.objects.get(codename="view_backgroundtaskrecord"))
    client.force_login(staff_user)
    page = client.get(reverse("job_detail", args=[record.pk])).content.decode()
    assert f"attempt 1 lost, later completed at {first.late_at:%H:%M:%S}" in page and "later completed</span>" in page


@pytest.mark.parametrize("options", [{"at_most_once": True}, {}], ids=["at-most-once", "interruptions used up"])
def test_a_cut_off_worker_that_finishes_after_the_clock_failed_its_job_lands_late(redis_conn, settings, options):
    """No retry left (at-most-once, or requeued JOBS_MAX_INTERRUPTIONS times): the clock settles
    the row as failed WorkerLost. The late completion is no longer refused without a trace: it
    is on the attempt, marked late; the row stays failed."""
    from jobs.models import intents

    settings.JOBS_MAX_INTERRUPTIONS = 0
    record = _running_on_a_cut_off_host(settings, **options)
    reconcile_records()
    record = fresh(record)
    assert (record.status, record.error_type) == (Status.FAILED, "WorkerLost")
    assert not intents.Complete(record.pk, "exec-cut-off", result=4, started_at=record.started_at).apply()
    record = fresh(record)
    attempt = record.attempt_set.get()
    assert (record.status, record.result, record.attempts) == (Status.FAILED, None, 1)
    assert attempt.late_outcome == "completed" and attempt.late_at is not None
    assert attempt.outcome == ("failed" if options else "lost")


# --- one bad record never blocks its queue ------------------------------------------------

def test_a_record_the_clock_cannot_repair_is_skipped_and_logged_once(redis_conn, settings, caplog):
    settings.JOBS_PENDING_GRACE_SECONDS = 0
    records = [api.enqueue(demo.add, i, 1) for i in range(3)]
    for record in records:
        api._delete_rq_job(record)  # Redis lost them: each pass pushes them again
    bad = records[1]
    redis_conn.hset(Job.key_for(str(bad.pk)), mapping={"status": "no-such-status"})
    with caplog.at_level("ERROR", logger="jobs.reconcile"):
        first = reconcile_records()
        second = reconcile_records()
    assert sorted(first.pushed) == sorted(str(r.pk) for r in records if r is not bad)
    assert [e.split(":")[0] for e in first.errors] == [str(bad.pk)]
    assert [e.split(":")[0] for e in second.errors] == [str(bad.pk)], "still skipped, never blocking the rest"
    logged = [r for r in caplog.records if str(bad.pk) in r.getMessage()]
    assert len(logged) == 1, "logged once across two passes"
