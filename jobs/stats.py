"""Read-only numbers for the dashboard: counts, depth, latency, throughput, workers.

Nothing here writes. In particular nothing calls an RQ registry's ``count`` or ``len()``:
those run the registry's cleanup, which fails abandoned jobs as a side effect.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Max, Min, Q
from django.db.models.functions import Coalesce, TruncMinute
from django.utils import timezone
from rq import Worker, worker_registration
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, Execution
from rq.utils import as_text, decode_redis_hash, utcparse

from . import limits as _limits
from .conf import jobs_setting
from .connection import REDIS_ERRORS, get_connection, queue_names
from .models import BackgroundTaskRecord, QueueSample, Status

SMALL_STATES = [Status.PENDING, Status.RUNNING, Status.FAILED, Status.CANCELLED]


class Unavailable(Exception):
    """Redis did not answer: the numbers that live there cannot be read now."""


# --- records -----------------------------------------------------------------

@dataclass
class QueueStats:
    """One queue's depth now: ready-to-run pending, scheduled, running and finished counts."""

    name: str
    pending: int = 0
    scheduled: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    oldest_pending_at: datetime | None = None
    latency_seconds: float = 0.0
    paused: bool = False
    workers: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.scheduled + self.running + self.completed + self.failed + self.cancelled


def queue_stats(now: datetime | None = None) -> list[QueueStats]:
    """Per configured queue (plus any queue only rows still name): counts by state and latency.

    No poll counts a million rows. Pending, scheduled, running, failed and cancelled are
    counted live: a GROUP BY over those states only (index-only on record_status_queue),
    so its cost follows the small states, not the history. Completed comes from
    completed_counts(). Latency is the age of the oldest pending job that is ready to run
    (a due scheduled job counts from its scheduled time).
    """
    now = now or timezone.now()
    ready = Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now)
    rows = BackgroundTaskRecord.objects.order_by()
    # Two queries, each an index range: a NOT (status = 'completed') cannot use the index and
    # scanned the whole table (EXPLAIN in docs/PERFORMANCE.md). The counts read only the
    # index; the pending details read the pending rows, the one state small by definition.
    counts = (rows.filter(status__in=SMALL_STATES).values("queue_name", "status").annotate(n=Count("*"))
              .values_list("queue_name", "status", "n"))
    pending = (rows.filter(status=Status.PENDING).values("queue_name")
               .annotate(scheduled=Count("pk", filter=Q(scheduled_for__gt=now)),
                         oldest=Min(Coalesce("scheduled_for", "enqueued_at"), filter=ready))
               .values_list("queue_name", "scheduled", "oldest"))
    stats = {name: QueueStats(name) for name in queue_names()}
    for name, status, n in counts:
        queue = stats.setdefault(name, QueueStats(name))
        setattr(queue, str(status), getattr(queue, str(status)) + n)
    for name, scheduled, oldest in pending:
        queue = stats.setdefault(name, QueueStats(name))
        queue.scheduled, queue.pending = scheduled, queue.pending - scheduled
        queue.oldest_pending_at = oldest
    for name, completed in completed_counts(now).items():
        stats.setdefault(name, QueueStats(name)).completed = completed
    for queue in stats.values():
        if queue.oldest_pending_at:
            queue.latency_seconds = max(0.0, (now - queue.oldest_pending_at).total_seconds())
    return list(stats.values())


def completed_counts(now: datetime | None = None, max_age: timedelta = timedelta(minutes=5)) -> dict[str, int]:
    """Completed jobs per queue: the clock's latest exact count (QueueSample.completed_total)
    plus the completions since (index record_status_finished, about a minute of rows).

    Exact for everything that completed; rows deleted (pruned) since the sample are still
    counted until the next one, at most a minute later. With no sample younger than
    `max_age` (no clock running) it counts the rows.
    """
    now = now or timezone.now()
    completed = BackgroundTaskRecord.objects.order_by().filter(status=Status.COMPLETED)
    taken_at = (QueueSample.objects.filter(taken_at__gte=now - max_age, taken_at__lte=now)
                .order_by("-taken_at").values_list("taken_at", flat=True).first())
    counts: dict[str, int] = {}
    if taken_at is None:
        base, since = {}, completed
    else:
        base = dict(QueueSample.objects.filter(taken_at=taken_at).values_list("queue_name", "completed_total"))
        since = completed.filter(finished_at__gt=taken_at)
    for name, n in since.values("queue_name").annotate(n=Count("pk")).values_list("queue_name", "n"):
        counts[name] = n
    for name, n in base.items():
        counts[name] = counts.get(name, 0) + n
    return counts


def state_counts(queues: list[QueueStats]) -> dict[str, int]:
    """Totals by state across queues ('scheduled' split from 'pending')."""
    states = ("pending", "scheduled", "running", "completed", "failed", "cancelled")
    return {state: sum(getattr(q, state) for q in queues) for state in states}


@dataclass
class Minute:
    at: datetime
    completed: int = 0
    failed: int = 0


def throughput(minutes: int = 60, now: datetime | None = None) -> list[Minute]:
    """Completed and failed jobs per minute over the last `minutes`, oldest first, zeros filled.

    Reads the rows (index record_status_finished), so it is exact without the clock running.
    """
    now = (now or timezone.now()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    since = now - timedelta(minutes=minutes)
    rows = (BackgroundTaskRecord.objects.order_by()
            .filter(status__in=[Status.COMPLETED, Status.FAILED], finished_at__gte=since, finished_at__lt=now)
            .annotate(minute=TruncMinute("finished_at")).values("minute", "status").annotate(n=Count("pk")))
    series = {since + timedelta(minutes=i): Minute(since + timedelta(minutes=i)) for i in range(minutes)}
    for row in rows:
        minute = series.get(row["minute"])
        if minute is not None:
            setattr(minute, str(row["status"]), row["n"])
    return list(series.values())


@dataclass
class FailureGroup:
    """Failed jobs sharing a function and an exception type."""

    func_path: str
    error_type: str
    count: int
    first_at: datetime | None
    last_at: datetime | None
    sample: BackgroundTaskRecord | None = None


def failure_groups(limit: int = 100) -> list[FailureGroup]:
    """Failed jobs grouped by (function, exception type), most recently seen first, with a sample.

    Two queries whatever the number of groups, both on the partial index record_failed_groups:
    the groups (index-only: COUNT(*), not COUNT(id)), then each group's newest row, found by
    its (function, type, last seen).
    """
    rows = (BackgroundTaskRecord.objects.failed().order_by().values("func_path", "error_type")
            .annotate(count=Count("*"), first_at=Min("finished_at"), last_at=Max("finished_at"))
            .order_by("-last_at", "func_path")[:limit])
    groups = {(row["func_path"], row["error_type"]): FailureGroup(**row) for row in rows}
    if not groups:
        return []
    newest = Q()
    for group in groups.values():
        newest |= Q(func_path=group.func_path, error_type=group.error_type, finished_at=group.last_at)
    samples = (BackgroundTaskRecord.objects.failed().filter(newest)
               .only("id", "func_path", "error_type", "error_message", "traceback", "finished_at", "args"))
    for sample in samples:
        group = groups[(sample.func_path, sample.error_type)]
        group.sample = group.sample or sample  # two rows may share the newest time: either will do
    return list(groups.values())


def overdue_scheduled(late_after: timedelta, now: datetime | None = None):
    """Pending jobs whose scheduled time passed more than `late_after` ago."""
    now = now or timezone.now()
    return BackgroundTaskRecord.objects.pending().filter(scheduled_for__lt=now - late_after)


def running_on_stale_workers(fresh_worker_names: set[str], grace: timedelta, now: datetime | None = None):
    """Running jobs whose worker is missing or has not beaten recently (started over `grace` ago)."""
    now = now or timezone.now()
    return (BackgroundTaskRecord.objects.running().filter(started_at__lt=now - grace)
            .exclude(worker_name__in=fresh_worker_names))


# --- Redis ---------------------------------------------------------------------

@dataclass
class WorkerInfo:
    """One RQ worker as it registered itself in Redis."""

    name: str
    hostname: str
    pid: int | None
    queues: list[str]
    state: str
    current_job_id: str | None
    last_heartbeat_at: datetime | None
    birth_at: datetime | None
    successful_count: int
    failed_count: int
    working_seconds: float
    heartbeat_age_seconds: float | None = None
    stale: bool = False
    writer_lag_seconds: float = 0.0  # how far its row writes lag behind (jobs.worker publishes it)

    @property
    def writes_behind(self) -> bool:
        """Whether its row writes have waited on the database past JOBS_WRITER_STALL_SECONDS."""
        return self.writer_lag_seconds > jobs_setting("JOBS_WRITER_STALL_SECONDS")

    @property
    def current_record_id(self) -> uuid.UUID | None:
        """The current job's id as a record id (None if idle); a custom RQ id maps as jobs.adopt says."""
        from .adopt import record_id_for

        return record_id_for(self.current_job_id) if self.current_job_id else None


def workers(now: datetime | None = None, stale_after: float | None = None) -> list[WorkerInfo]:
    """Every registered RQ worker, name order; stale = heartbeat older than `stale_after`
    seconds (default: JOBS_WORKER_LOST_AFTER_SECONDS, the reconciler's own threshold).

    Raises Unavailable if Redis does not answer.
    """
    now = now or timezone.now()
    if stale_after is None:
        stale_after = jobs_setting("JOBS_WORKER_LOST_AFTER_SECONDS")
    found: dict[str, WorkerInfo] = {}
    try:
        for connection in _distinct_connections():
            for info in _read_workers(connection):
                beat = info.last_heartbeat_at
                info.heartbeat_age_seconds = max(0.0, (now - beat).total_seconds()) if beat else None
                info.stale = info.heartbeat_age_seconds is None or info.heartbeat_age_seconds > stale_after
                found[info.name] = info
    except REDIS_ERRORS as exc:
        raise Unavailable(f"Redis is unreachable: {exc}") from None
    return [found[name] for name in sorted(found)]


def _read_workers(connection) -> list[WorkerInfo]:
    """The workers registered in one Redis, in two or three round trips whatever their number.

    What RQ's `Worker.all()` reads (the registry, each worker's hash, its execution index and
    those executions' hashes), pipelined: `Worker.all()` makes three to four round trips per
    worker, which the overview's and the queue table's polls paid on every refresh. Unlike it,
    this writes nothing: a registered key whose hash is gone (a worker that died without
    unregistering) is skipped, not removed; RQ's own maintenance removes it.
    """
    prefix = Worker.redis_worker_namespace_prefix
    keys = sorted(as_text(key) for key in connection.smembers(worker_registration.REDIS_WORKER_KEYS))
    keys = [key for key in keys if key.startswith(prefix)]
    if not keys:
        return []
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
            pipe.smembers(WORKER_EXECUTIONS_KEY_TEMPLATE.format(key[len(prefix):]))
        replies = pipe.execute()
    workers, executions = [], []
    for key, data, members in zip(keys, replies[::2], replies[1::2]):
        if not data:
            continue
        info = _worker_info(key[len(prefix):], decode_redis_hash(data, decode_values=True))
        workers.append(info)
        executions += [(info, Execution.from_composite_key(as_text(m), connection)) for m in sorted(members)]
    if executions:
        # An index member whose execution hash has expired is stale: the worker is not running it.
        with connection.pipeline(transaction=False) as pipe:
            for _, execution in executions:
                pipe.exists(execution.key)
            alive = pipe.execute()
        for (info, execution), exists in zip(executions, alive):
            if exists and info.current_job_id is None:
                info.current_job_id = execution.job_id
    return workers


def _worker_info(name: str, data: dict[str, str]) -> WorkerInfo:
    """A worker's hash as RQ's `Worker.refresh()` reads it."""
    def when(field: str) -> datetime | None:
        return utcparse(data[field]) if data.get(field) else None

    return WorkerInfo(
        name=name, hostname=data.get("hostname") or "", pid=int(data["pid"]) if data.get("pid") else None,
        queues=data["queues"].split(",") if data.get("queues") else [], state=data.get("state", "?"),
        current_job_id=None, last_heartbeat_at=when("last_heartbeat"), birth_at=when("birth"),
        successful_count=int(data.get("successful_job_count") or 0),
        failed_count=int(data.get("failed_job_count") or 0),
        working_seconds=float(data.get("total_working_time") or 0),
        writer_lag_seconds=_float(data.get("jobdeck_writer_lag")),
    )


def _float(text: str | None) -> float:
    try:
        return float(text or 0)
    except ValueError:
        return 0.0


def paused_queues() -> set[str]:
    """Queues an operator paused; raises Unavailable if Redis does not answer."""
    from .api import paused_queues as read

    try:
        return read()
    except REDIS_ERRORS as exc:
        raise Unavailable(f"Redis is unreachable: {exc}") from None


def _distinct_connections():
    """One connection per distinct Redis URL among the configured queues."""
    seen: dict[str, object] = {}
    for name in queue_names():
        url = settings.RQ_QUEUES[name].get("URL", "")
        if url not in seen:
            seen[url] = get_connection(name)
    return list(seen.values())


# --- concurrency limits (jobs.limits) ------------------------------------------------------

def limits() -> list[_limits.LimitInfo]:
    """Each limit key with the jobs running, queued and waiting under it (the queues page's Limits)."""
    return _limits.limits()


def waiting_for(records) -> dict[str, str]:
    """{record id: limit key} for those of `records` waiting for a slot of their limit."""
    return _limits.waiting_for(records)
