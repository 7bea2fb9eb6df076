"""Pushing records to RQ: each record's RQ job written to Redis, at most once.

A push never overwrites a job already under the record's id (RQ's unique enqueue), so a
record pushed twice (a retry of the push, the reconciler) is queued once.
"""

from __future__ import annotations

import itertools
import json
import logging
import zlib
from collections.abc import Callable, Sequence
from enum import Enum

from django.db import DatabaseError
from django.utils import timezone
from rq import Retry
from rq.exceptions import DuplicateJobError
from rq.job import Job
from rq.utils import now as rq_now
from rq.utils import utcformat

from . import limits
from .conf import jobs_setting
from .connection import REDIS_ERRORS, get_queue
from .models import BackgroundTaskRecord
from .models.transitions import apply_to
from .retry_policy import META_KEY

logger = logging.getLogger(__name__)


def push(record: BackgroundTaskRecord) -> bool:
    """Write the record's RQ job to Redis, once, and stamp pushed_at: the repair path
    (reconciler, retry). Returns False (and logs) if Redis is unreachable."""
    if _write_jobs([record]):
        return False
    record.mark_pushed()
    return True


def push_many(records: Sequence[BackgroundTaskRecord]) -> int:
    """Write the RQ jobs of freshly committed records; returns how many Redis took.

    Their rows went in with pushed_at set: only rows whose write failed (Redis
    unreachable) are written again, to clear it; they stay pending until the reconciler
    pushes them.
    """
    failed = _write_jobs(records)
    if failed:
        try:
            apply_to(BackgroundTaskRecord.objects.filter(pk__in=[r.pk for r in failed]), "unpush")
        except DatabaseError as exc:  # the rows are committed and reconcile reads Redis, not the flag
            logger.warning("could not clear pushed_at of %d jobs: %s", len(failed), exc)
        for record in failed:
            record.pushed_at = None
    return len(records) - len(failed)


def _write_jobs(records: Sequence[BackgroundTaskRecord]) -> list[BackgroundTaskRecord]:
    """Write the records' RQ jobs, each at most once: a job already under its id (pushed
    before) is left alone, so none is queued twice. Returns the records Redis did not take."""
    by_queue: dict[str, list[BackgroundTaskRecord]] = {}
    for record in records:
        by_queue.setdefault(record.queue_name, []).append(record)
    failed = []
    for queue_name, group in by_queue.items():
        written = 0
        try:
            queue = get_queue(queue_name)
            while written < len(group):
                _write_chunk(queue, group[written:written + PUSH_CHUNK])
                written += PUSH_CHUNK
        except REDIS_ERRORS as exc:
            logger.warning("%d jobs of queue %s stay pending, Redis unreachable: %s (the reconciler will push them)",
                           len(group) - written, queue_name, exc)
            failed += group[written:]
    return failed


def _write_chunk(queue, records: Sequence[BackgroundTaskRecord]) -> None:
    now = timezone.now()
    due = []
    for record in records:
        if record.scheduled_for and record.scheduled_for > now:
            try:
                queue.schedule_job(rq_job(record, queue), record.scheduled_for, unique=True)
            except DuplicateJobError:
                pass  # pushed before: the job already exists under this id
        elif record.limit_key:  # RQ's rate-limited enqueue (jobs.limits): waits for a slot
            limits.push_limited(queue, rq_job(record, queue))
        else:
            due.append(record)
    stamp = utcformat(rq_now())
    result_ttl = jobs_setting("JOBS_RESULT_TTL")
    # One script call per run of records of one call shape (all of an enqueue_many), in order.
    for _, run in itertools.groupby(due, key=lambda record: _shape(record, queue, result_ttl)):
        run = list(run)
        shared, dumps = _job_template(run[0], queue, result_ttl)
        keys = [queue.key, queue.redis_queues_keys]
        args = [len(shared) + 4, *shared, "created_at", stamp, "enqueued_at", stamp]
        for record in run:
            keys.append(queue.job_class.key_for(str(record.pk)))
            args += (str(record.pk), zlib.compress(dumps((record.func_path, None, record.args, record.kwargs))))
        _enqueue_script(queue.connection)(keys=keys, args=args)


def rq_job(record: BackgroundTaskRecord, queue) -> Job:
    retry = None
    if record.max_retries:
        retry = Retry(max=record.max_retries, interval=record.retry_intervals or 0)
    meta = None
    if record.retry_policy:  # read by the worker's failure path (jobs.retry_policy.prepare_failure)
        meta = {META_KEY: {**record.retry_policy, "retries": record.max_retries}}
    return queue.create_job(
        record.func_path, args=record.args, kwargs=record.kwargs, job_id=str(record.pk),
        timeout=record.timeout, result_ttl=jobs_setting("JOBS_RESULT_TTL"), retry=retry,
        description=record.func_path, meta=meta, rate_limit=limits.rate_limit(record),
    )


# --- RQ job hashes ---------------------------------------------------------------
# What RQ's own queue.enqueue_job(job, unique=True) writes, for up to PUSH_CHUNK jobs per
# round trip and without an RQ Job object per job: building those and packing every field
# of every job was most of enqueue_many's time. The fields are RQ's Job.to_dict() of one
# real Job per call shape (function, queue, retry policy, timeout), sent once per call; a
# job's own are its id and `data`, the call pickled as Job.data pickles it. Timestamps are
# the push's. tests/jobs/test_api.py compares the result with the hash RQ writes itself and
# runs such jobs through a worker.

PUSH_CHUNK = 1000  # jobs per script call; each call holds Redis for about 15 ms

ENQUEUE_SCRIPT = """
-- KEYS[1] = the queue's list, KEYS[2] = RQ's set of queues, KEYS[3..] = the jobs' hashes
-- ARGV[1] = n, ARGV[2..n+1] = the field/value pairs all these jobs share,
-- then for each job, in the order of KEYS: its id, its `data`
local n = tonumber(ARGV[1])
local shared = {unpack(ARGV, 2, n + 1)}
local pushed = 0
for k = 3, #KEYS do
    local a = n + 2 + 2 * (k - 3)
    if redis.call("EXISTS", KEYS[k]) == 0 then  -- else pushed before: leave it, as unique=True does
        redis.call("HSET", KEYS[k], "data", ARGV[a + 1], unpack(shared))
        redis.call("RPUSH", KEYS[1], ARGV[a])
        pushed = pushed + 1
    end
end
redis.call("SADD", KEYS[2], KEYS[1])
return pushed
"""

_scripts: dict = {}
_templates: dict[tuple, tuple[list, Callable]] = {}


def _enqueue_script(connection):
    if connection not in _scripts:
        _scripts[connection] = connection.register_script(ENQUEUE_SCRIPT)
    return _scripts[connection]


def _shape(record: BackgroundTaskRecord, queue, result_ttl: int) -> tuple:
    return (record.func_path, queue.name, queue.serializer, record.max_retries, tuple(record.retry_intervals),
            record.timeout, result_ttl, json.dumps(record.retry_policy, sort_keys=True) if record.retry_policy else "")


def _job_template(record: BackgroundTaskRecord, queue, result_ttl: int) -> tuple[list, Callable]:
    """The hash fields, flat, that every queued job of the record's call shape has, but
    `data` and the timestamps; and the serializer's dumps for `data`."""
    shape = _shape(record, queue, result_ttl)
    if shape not in _templates:
        if len(_templates) >= 1000:
            _templates.clear()
        job = rq_job(record, queue)  # status queued
        shared = []
        for name, value in job.to_dict().items():
            if value is not None and name not in ("data", "created_at", "enqueued_at"):
                shared += (name, _redis_value(value))
        _templates[shape] = (shared, job.serializer.dumps)
    return _templates[shape]


def _redis_value(value) -> str | bytes:
    """What redis-py would send for a hash value, fixed once (the status is a str enum)."""
    if isinstance(value, bytes):
        return value
    return str(value.value if isinstance(value, Enum) else value)
