"""Compare active records with Redis, repair drift, and report what changed.

The row is the source of truth for *what* should run; Redis is the source of truth
for *how far* it got. Each pass:

1. pushes pending rows whose RQ job never reached Redis, or vanished from it
   (push failed at commit, Redis restarted empty, a job lost between dequeue and start);
2. brings rows in step with jobs that started or ended while a hook could not write
   (database down, worker killed between Redis and the database);
3. settles running rows whose worker stopped beating (work horse or whole host
   SIGKILLed) as "worker lost": failed, or pending again if retries remain. RQ itself
   notices only after ~11 minutes; with JOBS_HEARTBEAT_SECONDS=10 and
   JOBS_WORKER_LOST_AFTER_SECONDS=30 this pass does within a minute;
4. resends stop commands for cancels that have not landed;
5. first of all, adopts jobs RQ holds without a row (jobs.adopt.sweep_queue, bounded per pass).

Safe to run concurrently with workers and with itself: every row write is a
conditional transition, every Redis write is RQ's own idempotent operation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import utcparse

from . import api
from .conf import jobs_setting
from .connection import get_connection, get_queue, is_configured, log_unknown_queue_once, queue_names
from .models import BackgroundTaskRecord, Status, intents
from .adopt import push_again, record_id_for, sweep_queue
from .outcomes import apply_status
from .values import error_text

logger = logging.getLogger(__name__)
CHUNK = 500
# A worker listening on several queues pops a job (BLPOP) a moment before it marks it started;
# a job seen queued but in no list is looked at again this much later before it counts as lost.
UNLISTED_CONFIRM_SECONDS = 2
TERMINAL = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED}


@dataclass
class Report:
    """What one reconcile pass changed (or, in a dry run, would change)."""

    dry_run: bool = False
    checked: int = 0
    pushed: list[str] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    stops_resent: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)  # RQ ids of jobs RQ held without a row
    errors: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def note(self, bucket: list[str], record_id, message: str) -> None:
        bucket.append(str(record_id))
        self.lines.append(f"{record_id}: {message}")

    @property
    def changed(self) -> int:
        return len(self.pushed) + len(self.synced) + len(self.lost) + len(self.stops_resent) + len(self.adopted)

    def summary(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        head = (f"reconcile: checked {self.checked} active rows, {verb} {self.changed}: "
                f"{len(self.pushed)} pushed, {len(self.synced)} synced from Redis, "
                f"{len(self.lost)} worker lost, {len(self.stops_resent)} stops resent")
        if self.adopted:
            head += f", {len(self.adopted)} adopted from RQ"
        if self.errors:
            head += f", {len(self.errors)} errors"
        return "\n".join([head, *("  " + line for line in self.lines), *("  error: " + e for e in self.errors)])


def reconcile_records(*, dry_run: bool = False) -> Report:
    """One reconcile pass over every pending and running row; returns the report."""
    report = Report(dry_run=dry_run)
    _sweep(report)
    now = timezone.now()
    grace = timedelta(seconds=jobs_setting("JOBS_PENDING_GRACE_SECONDS"))
    # Pending rows get a grace period: their push may still be on its way after commit.
    active = (BackgroundTaskRecord.objects
              .filter(Q(status=Status.RUNNING) | Q(status=Status.PENDING, enqueued_at__lt=now - grace))
              .only("id", "status", "queue_name", "pushed_at", "scheduled_for", "started_at", "worker_name",
                    "attempts", "interruptions", "at_most_once", "max_retries", "timeout", "cancel_requested_at",
                    "execution_id", "func_path", "args", "kwargs", "retry_intervals", "enqueued_at", "rq_id",
                    "args_preview")
              .order_by("enqueued_at"))
    batch: list[BackgroundTaskRecord] = []
    for record in active.iterator(chunk_size=CHUNK):
        batch.append(record)
        if len(batch) >= CHUNK:
            _reconcile_batch(batch, report, now)
            batch = []
    if batch:
        _reconcile_batch(batch, report, now)
    return report


def _sweep(report: Report) -> None:
    """Write rows for jobs RQ holds that have none (enqueued through RQ by a process without
    jobdeck's queue class); the pass below then brings them in step with Redis."""
    for queue_name in queue_names():
        try:
            adopted = sweep_queue(get_queue(queue_name), dry_run=report.dry_run)
        except Exception as exc:  # Redis down: the rest of the pass still runs
            report.errors.append(f"sweep of queue {queue_name}: {exc.__class__.__name__}: {exc}")
            continue
        for job in adopted:
            report.note(report.adopted, job.id, "in RQ without a row: adopted")
            status = job.get_status(refresh=False)
            if report.dry_run or not (status == JobStatus.STARTED or status in TERMINAL):
                continue
            # Started or ended already: in step now, not after the pending grace.
            record = BackgroundTaskRecord.objects.get(pk=record_id_for(job.id))
            try:
                _sync(record, status, report, (job.worker_name or "").encode())
            except Exception as exc:
                _skip(record, exc, report)


def _reconcile_batch(records: list[BackgroundTaskRecord], report: Report, now: datetime) -> None:
    by_queue: dict[str, list[BackgroundTaskRecord]] = {}
    for record in records:
        by_queue.setdefault(record.queue_name, []).append(record)
    for queue_name, group in by_queue.items():
        if not is_configured(queue_name):  # removed from RQ_QUEUES: nothing could run them
            log_unknown_queue_once(queue_name, len(group))
            continue
        try:
            _reconcile_queue_group(queue_name, group, report, now)
        except Exception as exc:  # Redis down, a bad row: report it and carry on with the rest
            logger.exception("reconcile of queue %s failed", queue_name)
            report.errors.append(f"queue {queue_name}: {exc.__class__.__name__}: {exc}")


def _reconcile_queue_group(queue_name: str, records: list[BackgroundTaskRecord], report: Report,
                           now: datetime) -> None:
    connection = get_connection(queue_name)
    with connection.pipeline(transaction=False) as pipe:
        for record in records:
            pipe.hmget(Job.key_for(record.rq_job_id), "status", "last_heartbeat", "worker_name", "enqueued_at")
        states = pipe.execute()
    lost_after = timedelta(seconds=jobs_setting("JOBS_WORKER_LOST_AFTER_SECONDS"))
    context = _Context(connection, queue_name, now, lost_after)
    for record, state in zip(records, states):
        report.checked += 1
        try:
            _reconcile_record(record, state, context, report)
        except Exception as exc:  # one record it cannot repair never blocks its queue
            _skip(record, exc, report)
    for record in _still_unlisted(queue_name, context.unlisted):
        try:
            _repush(record, report, "queued in Redis but in no queue list (lost at dequeue)", replace=True)
        except Exception as exc:
            _skip(record, exc, report)


@dataclass
class _Context:
    """What the records of one queue group share during a pass."""

    connection: object
    queue_name: str
    now: datetime
    lost_after: timedelta
    queued_ids: set[str] | None = None
    looked_up: bool = False
    unlisted: dict = field(default_factory=dict)


# Records a pass could not repair, by id, with the error it logged: logged once, not every pass.
_SKIPPED: dict[str, str] = {}


def _skip(record: BackgroundTaskRecord, exc: Exception, report: Report) -> None:
    """Report a record this pass could not repair; log it the first time only."""
    why = error_text(exc)
    report.errors.append(f"{record.pk}: {why}")
    if _SKIPPED.get(str(record.pk)) != why:
        if len(_SKIPPED) > 10_000:
            _SKIPPED.clear()
        _SKIPPED[str(record.pk)] = why
        logger.exception("reconcile: could not repair record %s; skipped (logged once)", record.pk)


def _reconcile_record(record: BackgroundTaskRecord, state: list, context: _Context, report: Report) -> None:
    """Bring one record in step with what Redis holds for it."""
    status, heartbeat, worker_name, enqueued_at = state
    connection, queue_name, now, lost_after = context.connection, context.queue_name, context.now, context.lost_after
    status = JobStatus(status.decode()) if status else None
    heartbeat_at = _parse_time(heartbeat)
    if record.status == Status.PENDING:
        if status is None:
            _repush(record, report, "its RQ job is missing from Redis")
        elif status == JobStatus.QUEUED and record.pushed_at and record.pushed_at < now - lost_after:
            if not context.looked_up:
                context.queued_ids, context.looked_up = _ids_in_queue_lists(queue_name), True
            if context.queued_ids is not None and record.rq_job_id not in context.queued_ids:
                context.unlisted[record.rq_job_id] = (record, enqueued_at)
        elif status == JobStatus.STARTED or status in TERMINAL:
            _sync(record, status, report, worker_name)
        elif record.pushed_at is None:
            # Queued or scheduled in Redis but the outbox flag never landed.
            if not report.dry_run:
                record.mark_pushed()
    else:  # running
        if status in (JobStatus.QUEUED, JobStatus.SCHEDULED) and _starting(connection, record, now - lost_after):
            return
        if status in TERMINAL or status in (JobStatus.QUEUED, JobStatus.SCHEDULED):
            _sync(record, status, report, worker_name)
        elif status == JobStatus.STARTED:
            if heartbeat_at is None or heartbeat_at < now - lost_after:
                _settle_lost(record, report, heartbeat_at)
            elif record.cancel_requested_at and record.cancel_requested_at < now - timedelta(
                    seconds=jobs_setting("JOBS_CANCEL_RESEND_SECONDS")):
                if not report.dry_run:
                    api.send_stop(record)
                report.note(report.stops_resent, record.pk, "cancel not confirmed yet: stop command resent")
        elif status is None and (record.started_at is None or record.started_at < now - lost_after):
            # Redis lost the job (restarted empty): settle it unless its worker is alive and
            # still on this very execution (a live worker that moved on will never report it).
            if (not _worker_alive(connection, record.worker_name, now - lost_after)
                    or not _worker_runs(connection, record)):
                _settle_lost(record, report, None, vanished=True)


def _still_unlisted(queue_name: str, unlisted: dict[str, tuple[BackgroundTaskRecord, bytes | None]]
                    ) -> list[BackgroundTaskRecord]:
    """The jobs of `unlisted` that, UNLISTED_CONFIRM_SECONDS later, are still queued with the same
    enqueue time and still in no list: lost at dequeue. One a worker popped meanwhile has started
    by then; pushing that one again would run it twice."""
    if not unlisted:
        return []
    time.sleep(UNLISTED_CONFIRM_SECONDS)
    connection = get_connection(queue_name)
    with connection.pipeline(transaction=False) as pipe:
        for job_id in unlisted:
            pipe.hmget(Job.key_for(job_id), "status", "enqueued_at")
        states = pipe.execute()
    listed = _ids_in_queue_lists(queue_name)
    if listed is None:
        return []
    return [record for (job_id, (record, enqueued_at)), (status, enqueued_again) in zip(unlisted.items(), states)
            if status == JobStatus.QUEUED.value.encode() and enqueued_again == enqueued_at and job_id not in listed]


def _ids_in_queue_lists(queue_name: str, limit: int = 100_000) -> set[str] | None:
    """Every id in the queue's list and its intermediate list; None if the backlog is too long to scan."""
    queue = get_queue(queue_name)
    connection = queue.connection
    if connection.llen(queue.key) > limit:
        return None
    ids = connection.lrange(queue.key, 0, -1) + connection.lrange(queue.intermediate_queue_key, 0, -1)
    return {i.decode() for i in ids}


def _starting(connection, record: BackgroundTaskRecord, beat_after: datetime) -> bool:
    """The worker has recorded the start (after its fork) but the work horse has not yet marked
    the job started: Redis still says queued, yet no retry is due. The row's execution is still
    open in the job's ExecutionRegistry and its worker beats."""
    key = ExecutionRegistry(record.rq_job_id, connection).key
    return (bool(record.execution_id) and connection.zscore(key, record.execution_id) is not None
            and _worker_alive(connection, record.worker_name, beat_after))


def _worker_runs(connection, record: BackgroundTaskRecord) -> bool:
    """Whether the row's worker still lists the row's execution as one of its own."""
    key = WORKER_EXECUTIONS_KEY_TEMPLATE.format(record.worker_name)
    return bool(record.execution_id) and bool(connection.sismember(key, f"{record.rq_job_id}:{record.execution_id}"))


def _worker_alive(connection, worker_name: str, beat_after: datetime) -> bool:
    if not worker_name:
        return False
    beat = _parse_time(connection.hget(f"rq:worker:{worker_name}", "last_heartbeat"))
    return beat is not None and beat >= beat_after


def _repush(record: BackgroundTaskRecord, report: Report, why: str, replace: bool = False) -> None:
    if record.args_preview:
        report.errors.append(f"{record.pk}: {why}, and its arguments were not JSON (only a preview is stored): "
                             "not pushed again; cancel it, or enqueue it anew")
        return
    report.note(report.pushed, record.pk, f"pending: {why}; pushed again")
    if report.dry_run:
        return
    if replace:
        api._delete_rq_job(record)
    if not push_again(record):
        report.errors.append(f"{record.pk}: push failed, Redis unreachable")


def _sync(record: BackgroundTaskRecord, status: JobStatus, report: Report, worker_name) -> None:
    """Copy an outcome Redis holds onto a row whose hook never landed: a write like any other,
    naming its attempt, so a worker's own write (before or after) wins the fields it owns."""
    rq_job = Job.fetch(record.rq_job_id, connection=get_connection(record.queue_name))
    result = rq_job.latest_result()
    report.note(report.synced, record.pk, f"{record.status} in the database, {status.value} in Redis")
    if report.dry_run:
        return
    if record.status == Status.PENDING:
        # The start hook never landed, or is landing right now: open the attempt under RQ's own
        # execution id, so that this pass and the hook count it once, whichever writes first.
        if status == JobStatus.STARTED:
            execution_id = (rq_job.execution_registry.get_execution_ids() or [""])[-1]
            if not execution_id:
                return  # it ended since this pass read it: the hook, or the next pass, records how
        else:
            execution_id = result.execution_id if result and result.execution_id else ""
        execution_id = execution_id or f"reconciled-{time.time()}"
        record.mark_running(
            execution_id=execution_id,
            worker_name=(worker_name or b"").decode() or (result.worker_name if result else "") or "",
            hostname="", pid=None, by_clock=True,
            started_at=rq_job.started_at or (result.execution_started_at if result else None) or timezone.now())
        record.refresh_from_db(fields=["execution_id"])
    if status == JobStatus.STARTED:
        return
    exc_string = (result.exc_string if result else "") or ""
    value = result.return_value if result and status == JobStatus.FINISHED else None
    if status in (JobStatus.QUEUED, JobStatus.SCHEDULED) and not exc_string:
        exc_string = "the attempt failed while its hook could not write; RQ scheduled a retry"
    execution_id = (result.execution_id if result and result.execution_id and status in TERMINAL else None)
    apply_status(record, status, exc_string=exc_string, result=value, timeout=record.timeout,
                 finished_at=rq_job.ended_at or timezone.now(),
                 execution_id=execution_id or record.execution_id or None)


def _settle_lost(record: BackgroundTaskRecord, report: Report, heartbeat_at: datetime | None,
                 vanished: bool = False) -> None:
    """A running job whose worker stopped beating: at-least-once, it goes back to its queue,
    its attempt recorded as lost, no retry used up (failed past JOBS_MAX_INTERRUPTIONS); an
    at-most-once job is failed or retried by RQ, as RQ decides."""
    since = f"last heartbeat {heartbeat_at:%H:%M:%S}" if heartbeat_at else "no heartbeat"
    message = f"worker lost: {record.worker_name or 'unknown worker'} stopped responding ({since})"
    report.note(report.lost, record.pk, message)
    if report.dry_run:
        return
    execution_id = record.execution_id or None
    if not record.at_most_once:
        lose = intents.Lose(record.pk, execution_id, error_message=message)
        lose.apply()
        if lose.applied in ("lose", "lose_final"):
            # Its RQ job goes too (a copy a cut-off worker still runs writes late, to its attempt).
            api._delete_rq_job(record)
        if lose.applied == "lose":
            record.refresh_from_db()
            push_again(record)
        return
    if not vanished and _expire_in_started_registry(record):
        status = Job.fetch(record.rq_job_id, connection=get_connection(record.queue_name)).get_status()
        if status in (JobStatus.QUEUED, JobStatus.SCHEDULED):
            record.mark_retrying(error_type="WorkerLost", error_message=message, execution_id=execution_id)
            return
        record.mark_failed(error_type="WorkerLost", error_message=message, execution_id=execution_id)
        return
    # Redis lost the job too: decide from the row and push a fresh attempt if one is due.
    if record.retries_left > 0:
        if record.mark_retrying(error_type="WorkerLost", error_message=message, execution_id=execution_id):
            record.transition("unpush")
            api._delete_rq_job(record)
            push_again(record)
    else:
        record.mark_failed(error_type="WorkerLost", error_message=message, execution_id=execution_id)


def _expire_in_started_registry(record: BackgroundTaskRecord) -> bool:
    """Age the job's StartedJobRegistry entries to 0 and run RQ's own abandoned-job cleanup,
    which retries the job if it has retries left and fails it otherwise."""
    queue = get_queue(record.queue_name)
    registry = StartedJobRegistry(queue.name, connection=queue.connection)
    prefix = f"{record.rq_job_id}:".encode()
    members = [m for m in queue.connection.zrange(registry.key, 0, -1) if m.startswith(prefix)]
    if not members:
        return False
    queue.connection.zadd(registry.key, {m: 0 for m in members})
    registry.cleanup(timestamp=1)
    return True


def _parse_time(value) -> datetime | None:
    if not value:
        return None
    try:
        return utcparse(value.decode() if isinstance(value, bytes) else value)
    except ValueError:
        return None
