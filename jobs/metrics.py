"""Prometheus metrics, read from the database and Redis at scrape time.

One GROUP BY over the records gives jobs by queue and state, queue latency and the
finished-job counters; a few Redis reads give queue depth, scheduled jobs, paused
queues and live workers. Nothing here calls RQ's registry ``cleanup()`` (which
``len(registry)`` and ``registry.count`` do): a scrape must never fail abandoned jobs.

The counters ``jobdeck_jobs_finished_total`` survive pruning and deletion: each scrape
adds the rows that reached a final state since the previous scrape (by ``updated_at``,
which only a transition writes) to totals kept in Redis, then moves the watermark in the
same WATCHed transaction, so concurrent scrapes never count a row twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import redis
from django.db import DatabaseError
from django.db.models import Count, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry
from rq.worker_registration import REDIS_WORKER_KEYS

from .connection import get_connection, queue_names
from .models import FINAL_STATES, BackgroundTaskRecord, Status
from .worker import PAUSED_KEY

logger = logging.getLogger(__name__)

COUNTED_UNTIL_KEY = "jobdeck:metrics:counted-until"
FINISHED_TOTALS_KEY = "jobdeck:metrics:finished"
# Rows are counted once their transition is this old, so a transaction still in flight
# at scrape time is not skipped.
COUNT_LAG = timedelta(seconds=5)
REDIS_ERRORS = (redis.exceptions.RedisError, OSError)


def render_metrics() -> bytes:
    """The metrics page in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobsCollector())
    return generate_latest(registry)


class JobsCollector:
    """A prometheus_client collector: every value is read when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        names = queue_names()
        up = GaugeMetricFamily("jobdeck_up", "1 if the metrics could read this component.", labels=["component"])
        connection = _metrics_connection(names)
        counted_until = None
        try:
            counted_until = _read_watermark(connection)
            redis_up = True
        except REDIS_ERRORS as exc:
            logger.warning("metrics: Redis unreachable: %s", exc.__class__.__name__)
            redis_up = False
        try:
            rows = list(_grouped_records(now, counted_until, now - COUNT_LAG))
            database_up = True
        except DatabaseError as exc:
            logger.warning("metrics: database unreachable: %s", exc.__class__.__name__)
            rows, database_up = [], False
        if database_up:
            yield from _record_metrics(rows, names, now)
        if redis_up:
            try:
                if database_up:
                    yield _finished_counter(connection, rows, counted_until, now - COUNT_LAG)
                yield from _redis_metrics(names)
            except REDIS_ERRORS as exc:
                logger.warning("metrics: Redis failed mid-scrape: %s", exc.__class__.__name__)
                redis_up = False
        up.add_metric(["database"], float(database_up))
        up.add_metric(["redis"], float(redis_up))
        yield up


# --- the database ----------------------------------------------------------------

def _grouped_records(now: datetime, counted_until: datetime | None, until: datetime):
    ready = Q(status=Status.PENDING) & (Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now))
    annotations = {
        "count": Count("pk"),
        # A retried job waits since its retry was due, not since its first enqueue.
        "oldest": Min(Coalesce("scheduled_for", "enqueued_at"), filter=ready),
    }
    if counted_until is not None:
        annotations["newly_finished"] = Count(
            "pk", filter=Q(status__in=FINAL_STATES, updated_at__gt=counted_until, updated_at__lte=until))
    return (BackgroundTaskRecord.objects.order_by().values("queue_name", "status").annotate(**annotations)
            .values_list("queue_name", "status", *annotations))


def _record_metrics(rows, names: list[str], now: datetime) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("jobdeck_jobs", "Job records by queue and state.", labels=["queue", "state"])
    latency = GaugeMetricFamily("jobdeck_queue_latency_seconds",
                                "How long the oldest job that is due has waited; 0 when none waits.",
                                labels=["queue"])
    counts = {(queue, status): 0 for queue in names for status in Status.values}
    oldest: dict[str, datetime] = {}
    for queue, status, count, first, *_ in rows:
        counts[(queue, status)] = count
        if first is not None:
            oldest[queue] = min(first, oldest.get(queue, first))
    for (queue, status), count in sorted(counts.items()):
        jobs.add_metric([queue, status], count)
    for queue in sorted({q for q, _ in counts}):
        waited = (now - oldest[queue]).total_seconds() if queue in oldest else 0.0
        latency.add_metric([queue], max(waited, 0.0))
    yield jobs
    yield latency


# --- Redis -----------------------------------------------------------------------------

def _metrics_connection(names: list[str]) -> Redis:
    return get_connection(names[0] if names else "default")


def _read_watermark(connection: Redis) -> datetime | None:
    value = connection.get(COUNTED_UNTIL_KEY)
    return datetime.fromisoformat(value.decode()) if value else None


def _finished_counter(connection: Redis, rows, counted_until: datetime | None, until: datetime) -> Metric:
    """Add the rows finished since the watermark to the Redis totals, once, and report the totals."""
    increments = {}
    if counted_until is not None:
        increments = {f"{queue}|{status}": row[-1] for queue, status, *row in rows if row[-1]}
    with connection.pipeline() as pipe:
        try:
            pipe.watch(COUNTED_UNTIL_KEY)
            current = pipe.get(COUNTED_UNTIL_KEY)
            if (current.decode() if current else None) == (counted_until.isoformat() if counted_until else None):
                pipe.multi()
                for field, amount in increments.items():
                    pipe.hincrby(FINISHED_TOTALS_KEY, field, amount)
                pipe.set(COUNTED_UNTIL_KEY, until.isoformat())
                pipe.execute()
            # else: another scrape moved the watermark first and counted these rows
        except redis.exceptions.WatchError:
            pass
    counter = CounterMetricFamily("jobdeck_jobs_finished", "Jobs that reached a final state, by queue and state "
                                  "(counted since metrics were first scraped).", labels=["queue", "state"])
    totals = {tuple(k.decode().split("|", 1)): int(v) for k, v in connection.hgetall(FINISHED_TOTALS_KEY).items()}
    for queue in queue_names():
        for state in FINAL_STATES:
            totals.setdefault((queue, state), 0)
    for (queue, state), value in sorted(totals.items()):
        counter.add_metric([queue, state], value)
    return counter


def _redis_metrics(names: list[str]) -> Iterator[Metric]:
    depth = GaugeMetricFamily("jobdeck_queue_depth", "Jobs waiting in the queue's Redis list.", labels=["queue"])
    scheduled = GaugeMetricFamily("jobdeck_queue_scheduled", "Jobs in the queue's RQ scheduled registry.",
                                  labels=["queue"])
    paused = GaugeMetricFamily("jobdeck_queue_paused", "1 if an operator paused the queue.", labels=["queue"])
    queue_workers = GaugeMetricFamily("jobdeck_queue_workers", "Live workers listening on the queue.",
                                      labels=["queue"])
    workers = GaugeMetricFamily("jobdeck_workers", "Live RQ workers (registered and not expired).")
    paused_names = {m.decode() for m in _metrics_connection(names).smembers(PAUSED_KEY)}
    live: dict[str, list[str]] = {}
    seen_servers = set()
    for name in names:
        connection = get_connection(name)
        queue = Queue(name, connection=connection)
        with connection.pipeline(transaction=False) as pipe:
            # LLEN and ZCARD only: RQ's own counters run cleanup(), which can fail jobs.
            pipe.llen(queue.key)
            pipe.zcard(ScheduledJobRegistry(name, connection=connection).key)
            waiting, planned = pipe.execute()
        depth.add_metric([name], waiting)
        scheduled.add_metric([name], planned)
        paused.add_metric([name], float(name in paused_names))
        server = _server_identity(connection)
        if server not in seen_servers:
            seen_servers.add(server)
            live.update(_live_workers(connection))
    for name in names:
        queue_workers.add_metric([name], sum(1 for queues in live.values() if name in queues))
    workers.add_metric([], len(live))
    yield from (depth, scheduled, paused, queue_workers, workers)


def _server_identity(connection: Redis) -> tuple:
    kwargs = connection.connection_pool.connection_kwargs
    return tuple(str(kwargs.get(k)) for k in ("host", "port", "path", "db", "service_name"))


def _live_workers(connection: Redis) -> dict[str, list[str]]:
    """{worker key: its queue names} for registered workers whose key has not expired."""
    keys = sorted(k.decode() for k in connection.smembers(REDIS_WORKER_KEYS))
    if not keys:
        return {}
    with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hget(key, "queues")
        queues = pipe.execute()
    # A crashed worker stays in the set until its key expires; only a live key counts.
    return {key: value.decode().split(",") for key, value in zip(keys, queues) if value is not None}
