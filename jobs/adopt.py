"""Rows for jobs that reached Redis through RQ itself, not through jobs.api ("adopted" jobs).

A jobdeck row's id is a UUID; RQ accepts any string as a job id. The mapping, one way and
stable on every host: an RQ id that is a UUID in its canonical form (RQ's own default,
jobs.api's ids) is the row's id; any other (`job_id="my-job-1"`) maps to uuid5 of it in
RQ_ID_NAMESPACE, and the row keeps the original in `rq_id` (indexed: the search finds it).

Three paths write these rows, each at most once (an INSERT that ignores a row already there):
jobs.rq_classes.Queue when RQ enqueues, the worker's start write when it meets a job without
a row (intents.Start.adopt), and the reconciler's sweep of RQ's registries.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from .models import BackgroundTaskRecord, JobDependency, Status
from .values import capped_result, safe_str, storable_text, type_name

logger = logging.getLogger(__name__)
# Fixed for ever: changing it would give every custom-id job a new row id.
RQ_ID_NAMESPACE = uuid.UUID("7f3c1a52-2d4e-5b8a-9c61-0a4f6e2b8d13")
FUNC_PATH_MAX = 255


def record_id_for(rq_id: str) -> uuid.UUID:
    """The row id of the RQ job `rq_id`: itself when it is a canonical UUID, else uuid5 of it."""
    try:
        value = uuid.UUID(rq_id)
    except (ValueError, TypeError, AttributeError):
        return uuid.uuid5(RQ_ID_NAMESPACE, str(rq_id))
    return value if str(value) == rq_id else uuid.uuid5(RQ_ID_NAMESPACE, rq_id)


def stored_rq_id(rq_id: str) -> str | None:
    """What the row's `rq_id` holds: None when the RQ id is the row's id itself."""
    return None if str(record_id_for(rq_id)) == rq_id else rq_id


def _arguments(job: Job) -> tuple[list, dict, bool]:
    """The job's arguments as stored JSON, or per-argument previews (and True) when they are not JSON."""
    try:
        args, kwargs = list(job.args), dict(job.kwargs)
    except Exception as exc:  # noqa: BLE001 (data that cannot be unpickled here: a class this process lacks)
        return [{"repr": f"<the arguments could not be read: {type_name(exc)}: {safe_str(exc, 500)}>",
                 "note": "not readable"}], {}, True
    try:
        text = json.dumps([args, kwargs], allow_nan=False)
    except Exception:  # noqa: BLE001 (not JSON: a datetime, an object, NaN, recursion)
        text = None
    if text is not None and "\\u0000" not in text and storable_text(text) == text:
        return args, kwargs, False
    return ([capped_result(a) for a in args],
            {safe_str(k, 255): capped_result(v) for k, v in kwargs.items()}, True)


def row_values(job: Job) -> dict:
    """The row an RQ job gets: what RQ knows of it (function, arguments, queue, times, retries)."""
    args, kwargs, preview = _arguments(job)
    try:
        func_path = job.func_name or ""
    except Exception:  # noqa: BLE001
        func_path = "<unreadable>"
    enqueued_at = job.enqueued_at or job.created_at or timezone.now()
    if timezone.is_naive(enqueued_at):
        enqueued_at = timezone.make_aware(enqueued_at, timezone.utc)
    return {
        "func_path": safe_str(func_path, FUNC_PATH_MAX), "args": args, "kwargs": kwargs, "args_preview": preview,
        "queue_name": safe_str(job.origin or "default", 64), "enqueued_at": enqueued_at, "pushed_at": enqueued_at,
        "timeout": job.timeout if isinstance(job.timeout, int) else None,
        "max_retries": max(int(job.retries_left or 0), 0), "retry_intervals": list(job.retry_intervals or []),
        "rq_id": stored_rq_id(job.id), "group_id": job.group_id or None,
    }


def record_job(job: Job, *, scheduled_for: datetime | None = None) -> bool:
    """Write the row of an RQ job (and its dependencies) unless it has one; True if written now."""
    record_id = record_id_for(job.id)
    if BackgroundTaskRecord.objects.filter(pk=record_id).exists():
        return False
    values = row_values(job)
    if scheduled_for is not None:
        values["scheduled_for"] = scheduled_for if timezone.is_aware(scheduled_for) else timezone.make_aware(
            scheduled_for, timezone.utc)
    # Another path may write it meanwhile (the worker, the sweep): the INSERT then does nothing.
    BackgroundTaskRecord.objects.bulk_create([BackgroundTaskRecord(pk=record_id, **values)], ignore_conflicts=True)
    parents = list(job._dependency_ids or [])
    if parents:
        JobDependency.objects.bulk_create([JobDependency(record_id=record_id, parent_rq_id=safe_str(p, 255))
                                           for p in parents], ignore_conflicts=True)
    return True


def adopter(job: Job) -> Callable[[], bool]:
    """What the worker's start write calls when the job has no row: write it from RQ's data, once."""
    def adopt() -> bool:
        if not record_job(job):
            return False
        logger.info("job %s had no row: adopted from RQ's data", job.id)
        return True
    return adopt


def push_again(record: BackgroundTaskRecord) -> bool:
    """Push a record's job again from its row; a job RQ knew by a custom id comes back under the
    row's id (its `rq_id` is cleared). False if Redis is unreachable or only a preview of its
    arguments is stored (those are never run: see requeue_payload)."""
    from .push import push

    if record.args_preview:
        logger.warning("job %s: its arguments are only a preview; not pushed again from the row", record.pk)
        return False
    if record.rq_id:
        BackgroundTaskRecord.objects.filter(pk=record.pk).update(rq_id=None)
        record.rq_id = None
    return push(record)


def rq_payload(record: BackgroundTaskRecord) -> Job | None:
    """RQ's own copy of the record's job (its pickled call), while Redis still holds it."""
    from .connection import get_connection

    try:
        return Job.fetch(record.rq_job_id, connection=get_connection(record.queue_name))
    except NoSuchJobError:
        return None


def requeue_payload(record: BackgroundTaskRecord, job: Job) -> None:
    """Run RQ's own payload of the job again (an operator's retry of a job whose arguments are only
    a preview here): out of its failed or cancelled registry, back onto its queue."""
    from .connection import get_queue

    queue = get_queue(record.queue_name)
    for registry in (queue.failed_job_registry, queue.canceled_job_registry):
        registry.remove(job)
    queue.enqueue_job(job)


# The sweep looks at this many of the newest ids of each queue list and registry per pass, and
# writes at most SWEEP_MAX_ADOPTED rows: a backlog of foreign jobs is adopted over a few passes.
SWEEP_SCAN = 1000
SWEEP_MAX_ADOPTED = 500


def _rq_ids_of(queue) -> list[str]:
    """The newest ids of the queue's list, its intermediate list and each of its registries."""
    ids = [i.decode() if isinstance(i, bytes) else i
           for i in queue.connection.lrange(queue.key, -SWEEP_SCAN, -1)
           + queue.connection.lrange(queue.intermediate_queue_key, -SWEEP_SCAN, -1)]
    for registry in (queue.scheduled_job_registry, queue.deferred_job_registry, queue.started_job_registry,
                     queue.finished_job_registry, queue.failed_job_registry, queue.canceled_job_registry):
        ids += registry.get_job_ids(0, SWEEP_SCAN - 1, desc=True, cleanup=False)
    return list(dict.fromkeys(ids))


def sweep_queue(queue, limit: int = SWEEP_MAX_ADOPTED, dry_run: bool = False) -> list[Job]:
    """Write a row for each job RQ holds for `queue` that has none (at most `limit`); returns those jobs."""
    by_record = {record_id_for(rq_id): rq_id for rq_id in _rq_ids_of(queue)}
    known: set = set()
    keys = list(by_record)
    for start in range(0, len(keys), SWEEP_SCAN):
        known.update(BackgroundTaskRecord.objects.filter(pk__in=keys[start:start + SWEEP_SCAN])
                     .values_list("pk", flat=True))
    unknown = [rq_id for record_id, rq_id in by_record.items() if record_id not in known][:limit]
    if not unknown:
        return []
    jobs = [job for job in Job.fetch_many(unknown, connection=queue.connection, serializer=queue.serializer)
            if job is not None]  # None: gone since it was listed
    if dry_run:
        return jobs
    adopted = []
    for job in jobs:
        scheduled_for = None
        try:
            if job.get_status(refresh=False) == JobStatus.SCHEDULED:
                scheduled_for = queue.scheduled_job_registry.get_scheduled_time(job)
            if record_job(job, scheduled_for=scheduled_for):
                adopted.append(job)
        except Exception:  # one job it cannot write never stops the sweep
            logger.exception("sweep: could not adopt job %s; skipped", job.id)
    return adopted


# --- what the job page shows of a job's relations (dependencies, group) -------------------------

RELATED_MAX = 50


@dataclass
class Related:
    """Another job named by RQ id, with its row when jobdeck has one."""

    rq_id: str
    record: BackgroundTaskRecord | None

    @property
    def done(self) -> bool:
        return self.record is not None and self.record.status == Status.COMPLETED


@dataclass
class Relations:
    """The jobs a record depends on, its dependents and the other members of its group."""

    parents: list[Related]
    dependents: list[BackgroundTaskRecord]
    group: list[BackgroundTaskRecord]
    deferred: bool | None = None  # RQ holds the job as deferred; None: unknown (Redis away, job gone)

    @property
    def waiting_on(self) -> list[Related]:
        """The parents a job RQ still defers waits for: those not completed (RQ's rule, unless the job
        allows a failed parent). Released (queued or later in RQ): none."""
        if self.deferred is False:
            return []
        return [parent for parent in self.parents if not parent.done]


def relations(record: BackgroundTaskRecord) -> Relations:
    """A record's parents (by RQ id, with their rows), dependents and group members, each list bounded."""
    parent_ids = list(record.dependencies.values_list("parent_rq_id", flat=True)[:RELATED_MAX])
    rows = BackgroundTaskRecord.objects.only("id", "status", "func_path", "rq_id").in_bulk(
        [record_id_for(rq_id) for rq_id in parent_ids])
    parents = [Related(rq_id, rows.get(record_id_for(rq_id))) for rq_id in parent_ids]
    slim = BackgroundTaskRecord.objects.only("id", "status", "func_path", "rq_id", "enqueued_at")
    dependents = list(slim.filter(dependencies__parent_rq_id=record.rq_job_id)[:RELATED_MAX])
    group = list(slim.filter(group_id=record.group_id).exclude(pk=record.pk)[:RELATED_MAX]) if record.group_id else []
    return Relations(parents, dependents, group, _deferred(record) if parents else None)


def _deferred(record: BackgroundTaskRecord) -> bool | None:
    """Whether RQ still holds the record's job as deferred (waiting on its parents)."""
    from .connection import REDIS_ERRORS, get_connection

    if record.status != Status.PENDING:
        return False
    try:
        status = get_connection(record.queue_name).hget(Job.key_for(record.rq_job_id), "status")
    except REDIS_ERRORS:
        return None
    return None if status is None else status.decode() == JobStatus.DEFERRED.value
