"""Concurrency limits: at most N jobs with a key at once, with RQ 3.0's RateLimit.

``enqueue(..., limit=("partner-api", 2))`` stores the key and the number on the record; the push
gives the RQ job RQ's ``RateLimit``, and writes it the way ``Queue.enqueue`` does for such a job
(``Queue._enqueue_rate_limited_job``: saved as rate_limited, added to the key's waiting set, then
as many waiting jobs as there are free slots are moved to their queues). RQ's worker frees the
slot when the job ends and moves the next waiting job in; RQ's scheduler does the same for a
delayed one. A slot is held from the job's queueing to its end (RQ's rule: "queued or executing").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from redis.exceptions import WatchError
from rq.job import Job
from rq.rate_limit import RateLimit, RateLimitRegistry

from .connection import REDIS_ERRORS, get_connection
from .models import BackgroundTaskRecord

KEY_MAX_CHARS = 100


def check(limit) -> tuple[str, int] | tuple[None, None]:
    """enqueue's `limit` option, checked: (key, concurrency), or (None, None) for no limit."""
    if limit is None:
        return None, None
    if not isinstance(limit, (tuple, list)) or len(limit) != 2:
        raise TypeError(f"limit must be a (key, concurrency) pair, like ('partner-api', 2); got {limit!r}")
    key, concurrency = limit
    if not isinstance(key, str) or not 1 <= len(key) <= KEY_MAX_CHARS or "\x00" in key:
        raise ValueError(f"a limit's key must be text of 1 to {KEY_MAX_CHARS} characters; got {key!r}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 10_000:
        raise ValueError(f"a limit's concurrency must be a whole number from 1 to 10000; got {concurrency!r}")
    return key, concurrency


def rate_limit(record) -> RateLimit | None:
    """RQ's RateLimit for the record's RQ job, if it has a limit."""
    if not record.limit_key:
        return None
    return RateLimit(record.limit_key, record.limit_concurrency)


def push_limited(queue, job: Job) -> bool:
    """Write a rate-limited RQ job as Queue.enqueue does, unless a job already exists under its id
    (the push's rule: never twice). The WATCH makes "absent, then written" one step. False if it existed."""
    with queue.connection.pipeline() as pipe:
        try:
            pipe.watch(job.key)
            if pipe.exists(job.key):
                return False
            pipe.multi()
            pipe.sadd(queue.redis_queues_keys, queue.key)
            queue._enqueue_rate_limited_job(job, pipeline=pipe)
            pipe.execute()
        except WatchError:  # written meanwhile by another push
            return False
    return True


@dataclass
class LimitInfo:
    """One limit key as the queues page shows it: the jobs holding its slots and those waiting."""

    key: str
    concurrency: int
    holding: list[str]  # RQ job ids (= record ids) holding a slot: queued or running
    waiting: list[str]  # waiting for a slot, oldest first
    running: list[str] = field(default_factory=list)  # those of `holding` whose row is running

    @property
    def queued(self) -> list[str]:
        return [job_id for job_id in self.holding if job_id not in self.running]


def limits() -> list[LimitInfo]:
    """Every limit key RQ knows, with its slot holders and waiting jobs (empty if Redis is unreachable)."""
    try:
        registries = RateLimitRegistry.all(get_connection())
        # Only jobdeck's own jobs (record ids): a foreign RQ job under the same key still takes a slot.
        found = [LimitInfo(r.key, r.concurrency, _ids(r.get_allowed_job_ids()), _ids(r.get_rate_limited_job_ids()))
                 for r in registries]
    except REDIS_ERRORS:
        return []
    holders = [job_id for info in found for job_id in info.holding]
    running = {str(pk) for pk in BackgroundTaskRecord.objects.filter(
        pk__in=holders, status="running").values_list("pk", flat=True)}
    for info in found:
        info.running = [job_id for job_id in info.holding if job_id in running]
    return sorted(found, key=lambda info: info.key)


def _ids(ids: list[str]) -> list[str]:
    """The ids that are record ids, as the dashboard links them (a foreign RQ job's may be anything)."""
    found = []
    for job_id in ids:
        try:
            found.append(str(uuid.UUID(job_id)))
        except ValueError:
            pass
    return found


def waiting_for(records) -> dict[str, str]:
    """{record id: limit key} for those of `records` (pending, with a limit) that wait for a slot."""
    candidates = [r for r in records if getattr(r, "limit_key", None) and r.status == "pending"]
    if not candidates:
        return {}
    try:
        with get_connection().pipeline(transaction=False) as pipe:
            for record in candidates:
                pipe.zscore(RateLimitRegistry(record.limit_key, pipe).rate_limited_key, str(record.pk))
            scores = pipe.execute()
    except REDIS_ERRORS:
        return {}
    return {str(r.pk): r.limit_key for r, score in zip(candidates, scores) if score is not None}
