"""Write-behind bookkeeping (jobs.writer): order, flush at exit, batches, fork safety, outages."""

import functools
import os
import signal
import threading

import pytest
from django.db import connection
from django.utils import timezone
from rq.job import Job, JobStatus

from jobs import api, demo, fastpath
from jobs import writer as writer_module
from jobs.models import AuditEntry, BackgroundTaskRecord, Status, intents
from jobs.writer import RowWriter, Write
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE_POSTGRES = "postgres://postgres@127.0.0.1:1/nowhere"
UNREACHABLE_SQLITE = "sqlite:////nonexistent-dir/jobdeck.sqlite3"


def fresh(record):
    record.refresh_from_db()
    return record


def test_a_burst_worker_has_written_every_row_when_it_exits(start_worker):
    records = [api.enqueue(demo.add, i, i) for i in range(40)]
    retried = api.enqueue(demo.fail, "again", retries=1)
    worker = start_worker("default", extra=("--burst",))
    assert worker.process.wait(120) == 0
    # No waiting here: the process is gone, so its writer has flushed.
    assert [fresh(r).status for r in records] == [Status.COMPLETED] * 40
    assert [r.result for r in records] == [2 * i for i in range(40)]
    assert fresh(retried).status == Status.FAILED and retried.attempts == 2


def test_each_start_lands_before_its_end(start_worker):
    """If an end overtook its start, the end would count a missed attempt (no execution id,
    no worker) and the late start would change nothing."""
    records = [api.enqueue(demo.noop) for _ in range(30)]
    worker = start_worker("default", extra=("--burst",))
    assert worker.process.wait(120) == 0
    for record in records:
        record = fresh(record)
        attempt = record.attempt_set.get()
        assert (record.status, record.attempts, attempt.outcome) == (Status.COMPLETED, 1, "completed")
        assert attempt.execution_id and attempt.worker_name == record.worker_name and attempt.pid
        assert attempt.started_at <= attempt.finished_at == record.finished_at


def test_writes_run_in_submission_order_and_flush_waits_for_them():
    writer = RowWriter()
    done: list[int] = []
    release = threading.Event()
    writer.submit(Write("hold", "-", lambda: release.wait(10)))
    for number in range(200):
        writer.submit(Write("append", "-", functools.partial(done.append, number)))
    release.set()
    assert writer.flush(30)
    assert done == list(range(200))
    assert writer.close()


def test_a_backlog_is_written_batch_after_batch_without_lingering(monkeypatch):
    """The linger gathers writes for an idle thread; a thread that is behind must not wait
    before each batch (that capped a fast SimpleWorker at MAX_BATCH writes a linger)."""
    monkeypatch.setattr(writer_module, "LINGER_SECONDS", 60)
    writer = RowWriter()
    done: list[int] = []
    backlog = 3 * writer_module.MAX_BATCH  # three full batches: none of them has a reason to linger
    for number in range(backlog):
        writer._queue.put(Write("append", "-", functools.partial(done.append, number)))
    writer._ensure_thread()
    wait_for(lambda: len(done) == backlog, timeout=20, message="the backlog, without a 60 s linger")
    assert done == list(range(backlog))
    assert writer.close(10)


def test_a_batch_writes_each_transition_as_if_alone(monkeypatch):
    """Starts and completions sent together; the uncommon ones (a pending cancel, a start never
    recorded) are decided by the intent's ORM path."""
    batches: list[int] = []
    run_statements = fastpath.run_statements
    monkeypatch.setattr(fastpath, "run_statements", lambda statements: batches.append(len(statements))
                        or run_statements(statements))
    plain, cancelling, unstarted = [BackgroundTaskRecord.objects.create(func_path="jobs.demo.noop")
                                    for _ in range(3)]
    now = timezone.now()
    writer = RowWriter()
    release = threading.Event()
    writer.submit(Write("hold", "-", lambda: release.wait(10)))  # so the rest queue up behind it

    def start(record):
        writer.submit(Write("start", record.pk, intent=intents.Start(
            record.pk, f"e-{record.pk}", worker_name="w", hostname="h", pid=1, started_at=now)))

    def complete(record):
        writer.submit(Write("outcome", record.pk, intent=intents.Complete(
            record.pk, f"e-{record.pk}", result=7, finished_at=now, started_at=now)))

    start(plain)
    start(cancelling)
    writer.submit(Write("cancel", cancelling.pk, lambda: BackgroundTaskRecord.objects.filter(
        pk=cancelling.pk).update(cancel_requested_at=now)))
    complete(plain)
    complete(cancelling)
    complete(unstarted)
    release.set()
    assert writer.close(30)

    for record in (plain, cancelling, unstarted):
        record = fresh(record)
        assert (record.status, record.result, record.attempts) == (Status.COMPLETED, 7, 1)
        assert record.attempt_set.get().outcome == "completed"
        assert record.attempt_set.get().execution_id == f"e-{record.pk}", "every run names its attempt"
    assert cancelling.cancel_requested_at is None
    assert AuditEntry.objects.get(record_id=cancelling.pk).outcome == "too-late"
    if connection.vendor == "postgresql":
        assert max(batches) >= 2, "the writes shared a round trip"


def test_a_start_and_its_completion_in_one_batch_are_one_write_with_the_same_end(monkeypatch):
    """A job shorter than the linger: its start and completion become one statement
    (intents.Ran). Any case that statement does not settle ends exactly as two writes would."""
    from jobs.outcomes import outcome_intent

    batches: list[int] = []
    run_statements = fastpath.run_statements
    monkeypatch.setattr(fastpath, "run_statements", lambda statements: batches.append(len(statements))
                        or run_statements(statements))
    plain, cancelling, retried, failing = [BackgroundTaskRecord.objects.create(func_path="jobs.demo.noop")
                                           for _ in range(4)]
    BackgroundTaskRecord.objects.filter(pk=cancelling.pk).update(cancel_requested_at=timezone.now())
    now = timezone.now()
    writer = RowWriter()
    release = threading.Event()
    writer.submit(Write("hold", "-", lambda: release.wait(10)))

    def start(record, execution="e"):
        writer.submit(Write("start", str(record.pk), intent=intents.Start(
            str(record.pk), f"{execution}-{record.pk}", worker_name="w", hostname="h", pid=1, started_at=now)))

    def end(record, status=JobStatus.FINISHED, execution="e"):
        intent = outcome_intent(str(record.pk), f"{execution}-{record.pk}", status, timeout=180, started_at=now,
                                finished_at=now, result={"n": 7}, exc_string="ValueError: no", retry_at=None)
        writer.submit(Write("outcome", str(record.pk), intent=intent))

    for record in (plain, cancelling):
        start(record)
        end(record)
    start(retried, "first")  # an earlier attempt whose end was never written
    start(retried, "second")
    end(retried, execution="second")
    start(failing)
    end(failing, JobStatus.FAILED)
    release.set()
    assert writer.close(30)

    plain, cancelling, retried, failing = (fresh(r) for r in (plain, cancelling, retried, failing))
    assert (plain.status, plain.result, plain.attempts, plain.duration_ms) == (Status.COMPLETED, {"n": 7}, 1, 0)
    assert (plain.execution_id, plain.worker_name, plain.started_at, plain.finished_at) == (
        f"e-{plain.pk}", "w", now, now)
    assert list(plain.attempt_set.values_list("number", "outcome", "execution_id")) == [
        (1, "completed", f"e-{plain.pk}")]
    assert cancelling.status == Status.COMPLETED and cancelling.cancel_requested_at is None
    assert AuditEntry.objects.get(record_id=cancelling.pk).outcome == "too-late"
    assert list(retried.attempt_set.order_by("number").values_list("outcome", flat=True)) == ["lost", "completed"]
    assert (retried.status, retried.attempts) == (Status.COMPLETED, 2)
    assert (failing.status, failing.error_type, failing.attempts) == (Status.FAILED, "ValueError", 1)
    if connection.vendor == "postgresql":
        # plain, cancelling and the second start of `retried` joined their ends: 3 statements,
        # plus the first start of `retried`, the start of `failing` and its end: one round trip.
        assert batches == [6]


def test_a_forked_child_writes_inline_and_never_touches_the_queue(tmp_path):
    """A work horse is forked while the writer thread may hold its queue's lock."""
    writer = RowWriter()
    writer.submit(Write("warm up", "-", lambda: None))
    assert writer.flush(10)
    marker = tmp_path / "written"
    with writer._queue.mutex:  # held at the fork, as by the writer thread
        pid = os.fork()
        if pid == 0:  # the child: a deadlock here is ended by the alarm, exit status non-zero
            signal.alarm(10)
            code = 1
            try:
                writer.submit(Write("mark", "-", lambda: marker.write_text("inline")))
                code = 0 if writer.flush(1) else 2
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert marker.read_text() == "inline"
    assert writer.close(10)


def test_a_fork_waits_until_the_writer_is_between_passes():
    """On SQLite a horse forked mid-transaction would believe its process still holds the
    lock, and wait on its own writes for ever: the forking worker forks between passes."""
    from django.db import transaction

    writer = RowWriter()
    inside, release, events = threading.Event(), threading.Event(), []

    def slow_write():
        with transaction.atomic():
            BackgroundTaskRecord.objects.filter(pk=None).update(progress=0)
            inside.set()
            release.wait(10)
            events.append("write done")
        return True

    writer.submit(Write("slow", "-", slow_write))
    assert inside.wait(10)
    entered = threading.Event()

    def fork_side():
        with writer.between_passes():
            events.append("fork")
            entered.set()

    forker = threading.Thread(target=fork_side)
    forker.start()
    assert not entered.wait(0.3), "the fork went ahead inside the writer's transaction"
    release.set()
    forker.join(10)
    assert events == ["write done", "fork"]
    assert writer.close(10)


def test_writes_lost_to_a_database_outage_converge_after_reconcile(start_worker, redis_conn, settings):
    """The database is unreachable for the worker's whole run: every queued write fails (batches,
    then one at a time), the burst worker still exits, and the reconciler repairs every row."""
    from jobs.reconcile import reconcile_records

    ok = [api.enqueue(demo.add, i, 1) for i in range(10)]
    bad = api.enqueue(demo.fail, "no luck", retries=1)
    unreachable = UNREACHABLE_POSTGRES if connection.vendor == "postgresql" else UNREACHABLE_SQLITE
    worker = start_worker("default", extra=("--burst",), env={"DATABASE_URL": unreachable})
    assert worker.process.wait(120) == 0, "an outage must not fail the jobs or hang the exit"
    assert "could not record" in worker.output()
    statuses = [Job.fetch(str(r.pk), connection=redis_conn).get_status() for r in [*ok, bad]]
    assert statuses == [JobStatus.FINISHED] * 10 + [JobStatus.FAILED]
    assert {fresh(r).status for r in [*ok, bad]} == {Status.PENDING}
    settings.JOBS_PENDING_GRACE_SECONDS = 0
    report = reconcile_records()
    assert sorted(report.synced) == sorted(str(r.pk) for r in [*ok, bad])
    assert [(fresh(r).status, r.result) for r in ok] == [(Status.COMPLETED, i + 1) for i in range(10)]
    assert fresh(bad).status == Status.FAILED and bad.error_message == "no luck"


def test_progress_from_a_job_lands_while_the_writer_holds_its_start(start_worker):
    record = api.enqueue(demo.long_report, steps=20, step_seconds=0.05)
    worker = start_worker("default", extra=("--burst",))
    wait_for(lambda: (fresh(record).progress or 0) > 0, timeout=30, message="progress")
    assert worker.process.wait(60) == 0
    record = fresh(record)
    assert record.status == Status.COMPLETED and record.progress == 1.0 and record.attempts == 1


def test_one_poisoned_write_costs_only_itself_and_is_reduced_to_what_can_be_stored(caplog):
    """A result nothing can render (`10**5000`: str() and repr() refuse it) once made the whole
    batch be dropped, and the next job's row stayed pending. Now the batch is retried row by
    row, the poisoned write is stored reduced (a bounded preview, a note saying why), and the
    good writes around it land as they are."""
    good = [BackgroundTaskRecord.objects.create(func_path="jobs.demo.add") for _ in range(4)]
    bad = BackgroundTaskRecord.objects.create(func_path="jobs.demo.huge")
    failing = BackgroundTaskRecord.objects.create(func_path="jobs.demo.fail")
    now = timezone.now()
    writer = RowWriter()
    release = threading.Event()
    writer.submit(Write("hold", "-", lambda: release.wait(10)))

    def run(record, result=None, error=None):
        writer.submit(Write("start", record.pk, intent=intents.Start(
            record.pk, f"e-{record.pk}", worker_name="w", hostname="h", pid=1, started_at=now)))
        if error is None:
            end = intents.Complete(record.pk, f"e-{record.pk}", result=result, finished_at=now, started_at=now)
        else:
            end = intents.Fail(record.pk, f"e-{record.pk}", error_type=error, error_message="\udcff" * 10,
                               traceback="tb", finished_at=now)
        writer.submit(Write("outcome", record.pk, intent=end))

    run(good[0], 0)
    run(good[1], 1)
    run(bad, 10**5000)
    run(failing, error="L" * 300)
    run(good[2], 2)
    run(good[3], 3)
    release.set()
    assert writer.close(30)

    assert [(fresh(r).status, r.result, r.attempts) for r in good] == [(Status.COMPLETED, i, 1) for i in range(4)]
    bad = fresh(bad)
    assert (bad.status, bad.attempts) == (Status.COMPLETED, 1)
    assert bad.result["note"].startswith("the full record could not be written: ValueError")
    assert len(bad.result["preview"]) <= 1000
    failing = fresh(failing)
    assert (failing.status, failing.error_type) == (Status.FAILED, "L" * 255), "the error type is kept"
    assert "could not record" not in caplog.text, "nothing was dropped"
