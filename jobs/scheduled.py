"""Scheduled jobs: an operator runs one now, or moves it to another time.

A scheduled job (a delayed job, or a retry waiting for its backoff) is pending with a future
``scheduled_for`` and sits in RQ's ScheduledJobRegistry (a sorted set scored by its time) until a
worker's scheduler moves it to its queue. Both actions change the job in that set with one script
that acts only while the job is still there and not yet due: then no scheduler can be moving it
at the same moment, so it is never queued twice, and a move rewrites its one score (never a second
copy). The row changes in the same transaction as the audit, and is rolled back if Redis refuses.
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from rq.exceptions import NoSuchJobError
from rq.job import Job

from . import validation
from .actions import ACTIONS
from .api import ActionNotAllowed, audit, permit
from .connection import REDIS_ERRORS, get_queue
from .models import BackgroundTaskRecord, Status

# KEYS[1]: the scheduled registry; ARGV: job id, now (unix s), the new score ("" to take it out).
MOVE_SCRIPT = """
local score = redis.call("ZSCORE", KEYS[1], ARGV[1])
if not score or tonumber(score) <= tonumber(ARGV[2]) then
    return 0
end
if ARGV[3] == "" then
    redis.call("ZREM", KEYS[1], ARGV[1])
else
    redis.call("ZADD", KEYS[1], "XX", ARGV[3], ARGV[1])
end
return 1
"""


def run_now(record: BackgroundTaskRecord, user=None) -> str:
    """Queue a scheduled job at once (audited); ActionNotAllowed if it is no longer scheduled."""
    permit(user, "run-now")
    _move(record, None, user, "run-now")
    return "queued to run now"


def reschedule(record: BackgroundTaskRecord, user=None, at: datetime | None = None) -> str:
    """Move a scheduled job to `at`, a future time (ValueError otherwise), audited."""
    permit(user, "reschedule")
    at = check_time(at)
    _move(record, at, user, "reschedule")
    return f"moved to {timezone.localtime(at):%Y-%m-%d %H:%M:%S}"


def check_time(at) -> datetime:
    """`at` as a new time for a scheduled job: an aware datetime in the future, within MAX_SECONDS."""
    if not isinstance(at, datetime):
        raise TypeError(f"the new time must be a datetime, got {type(at).__name__}")
    if timezone.is_naive(at):
        raise ValueError("the new time must say its time zone (an aware datetime)")
    now = timezone.now()
    if at <= now:
        raise ValueError(f"the new time {at:%Y-%m-%d %H:%M:%S %Z} is in the past; pick a later one, or run it now")
    if at - now > timedelta(seconds=validation.MAX_SECONDS):
        raise ValueError("the new time is too far in the future")
    return at


def _move(record: BackgroundTaskRecord, at: datetime | None, user, verb: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        # The conditional UPDATE locks the row: of two operators, one moves it.
        moved = BackgroundTaskRecord.objects.filter(
            pk=record.pk, status=Status.PENDING, scheduled_for__gt=now).update(scheduled_for=at)
        if not moved or not _move_in_redis(record, at, now):
            raise ActionNotAllowed("the job is no longer scheduled (it is due, started or ended meanwhile)")
        audit(user, ACTIONS[verb].audit, record, was=record.scheduled_for.isoformat() if record.scheduled_for
              else None, to=at.isoformat() if at else "now")
    record.scheduled_for = at


def _move_in_redis(record: BackgroundTaskRecord, at: datetime | None, now: datetime) -> bool:
    queue = get_queue(record.queue_name)
    registry = queue.scheduled_job_registry
    score = calendar.timegm(at.utctimetuple()) if at else ""
    try:
        if not queue.connection.eval(MOVE_SCRIPT, 1, registry.key, record.rq_job_id,
                                     calendar.timegm(now.utctimetuple()), score):
            return False
        if at is None:  # out of the set: queue it as RQ's scheduler does a due job
            job = Job.fetch(record.rq_job_id, connection=queue.connection)
            if job.has_rate_limit:  # through its limit (jobs.limits): it may wait for a slot
                queue._enqueue_rate_limited_job(job)
            else:
                queue._enqueue_job(job)
    except NoSuchJobError:
        return False
    except REDIS_ERRORS as exc:
        raise ActionNotAllowed(f"Redis is unreachable, the job was not changed: {exc}") from None
    return True

