"""The only write path into RQ: enqueue, retry, cancel and delete tracked jobs.

Each job's row is written in the caller's transaction and its RQ job, whose id is the
row's UUID, is pushed only after commit. If Redis is down then, the row stays pending
with ``pushed_at`` empty and the reconciler pushes it later; a push never overwrites a
job already under its id (RQ's unique enqueue), so a job is never lost and never queued
twice.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from . import limits, retry_policy, validation
from .actions import ACTIONS
from .conf import jobs_setting
from .connection import REDIS_ERRORS, get_connection, is_configured
from .copy import insert_many, insert_one
from .models import AuditEntry, BackgroundTaskRecord, Status
from .push import push, push_many  # noqa: F401 (push is part of the api: tasks_backend calls it)

logger = logging.getLogger(__name__)

DOTTED_PATH = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$")


class ActionNotAllowed(Exception):
    """An operator action that does not apply to the job in its current state."""


class QueueGone(ActionNotAllowed):
    """The job's queue is no longer in RQ_QUEUES: it cannot run again (cancel and delete still work)."""
class ArgumentsNotStored(ActionNotAllowed):
    """A job enqueued through RQ with arguments that are not JSON, which Redis no longer holds:
    only a preview of its arguments is stored, so it cannot run again (jobs.adopt)."""


class NotPermitted(PermissionDenied):
    """The user lacks the action's permission (jobs.actions); Django answers it with a 403."""


def permit(user, verb: str) -> None:
    """Refuse, before anything changes, an action the user may not do (user None: the system)."""
    action = ACTIONS[verb]
    if not action.allowed(user):
        raise NotPermitted(f"{_name(user)} may not {verb}: that needs the “{action.permission}” permission")


# --- enqueue -----------------------------------------------------------------

def func_path_of(func_or_path: Callable | str) -> str:
    """The dotted import path RQ will call: 'package.module.function'."""
    if isinstance(func_or_path, str):
        path = func_or_path
    elif callable(func_or_path):
        path = getattr(func_or_path, "jobs_path", None) or f"{func_or_path.__module__}.{func_or_path.__qualname__}"
        if "<" in path:
            raise TypeError(f"{path} is not importable by a worker: enqueue a module-level function")
    else:
        raise TypeError(f"expected a function or a dotted path, got {type(func_or_path).__name__}")
    if not DOTTED_PATH.match(path) or len(path) > 255:
        raise TypeError(f"{path!r} is not a dotted path like 'package.module.function'")
    return path


def _check_json(args: Sequence, kwargs: dict) -> None:
    """Refuse, naming it, the first argument that cannot be stored as JSON."""
    if not isinstance(args, Sequence) or isinstance(args, (str, bytes)) or not isinstance(kwargs, dict):
        raise TypeError("args must be a sequence and kwargs a dict")
    validation.keyword_names(kwargs)
    named = [(f"positional argument {i} ({type(v).__name__})", v) for i, v in enumerate(args)]
    named += [(f"keyword argument {k!r} ({type(v).__name__})", v) for k, v in kwargs.items()]
    total = 2
    for name, value in named:
        try:
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} is not JSON-serializable: {exc}") from None
        except RecursionError:
            raise TypeError(f"{name} is nested too deeply to store") from None
        if "\\u" in text:
            _check_storable_text(name, value)
        total += len(text)
    limit = jobs_setting("JOBS_ARGS_MAX_BYTES")
    if total > limit:
        raise ValueError(f"arguments are {total} bytes as JSON; the limit is {limit}")


def _check_storable_text(name: str, value) -> None:
    """Refuse what PostgreSQL's jsonb cannot hold (SQLite would take it and the pages could not show it)."""
    raw = json.dumps(value, ensure_ascii=False)  # control characters stay escaped as \\u00XX
    if _JSON_NUL.search(raw):
        raise ValueError(f"{name} contains a NUL character (\\x00), which cannot be stored")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} contains a lone surrogate (text that is not valid Unicode), "
                         "which cannot be stored") from None


_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def build_record(func_or_path, args: Sequence = (), kwargs: dict | None = None, *, queue: str = "default",
                 retries: int = 0, retry_intervals=None, timeout: int | None = None,
                 delay=None, record_id: uuid.UUID | None = None,
                 at_most_once: bool | None = None, unique_key: str | None = None,
                 policy: dict | None = None, limit: tuple[str, int] | None = None) -> BackgroundTaskRecord:
    """Validate one call and return its unsaved record. Raises TypeError/ValueError on bad input.

    `limit`: (key, concurrency), see jobs.limits. `policy` is the record's retry_policy, from
    retry_policy.build (enqueue's backoff options).
    `record_id` gives the row (and RQ job) a chosen id instead of a random one: a caller that
    derives it from what the job is for (jobs.periodic: entry and time slot) gets at most one
    row per id, since a second save_and_push of it fails on the primary key.
    """
    kwargs = kwargs or {}
    func_path = func_path_of(func_or_path)
    options = _options(queue, retries, retry_intervals, timeout, at_most_once)
    delay_s = validation.seconds("delay", delay)
    _check_json(args, kwargs)
    limit_key, limit_concurrency = limits.check(limit)
    now = timezone.now()
    return _new_record(func_path=func_path, args=list(args), kwargs=dict(kwargs), enqueued_at=now,
                       scheduled_for=now + timedelta(seconds=delay_s) if delay_s else None,
                       unique_key=validation.unique_key(unique_key), retry_policy=policy,
                       limit_key=limit_key, limit_concurrency=limit_concurrency, **options,
                       **({"id": record_id} if record_id is not None else {}))


def _options(queue: str, retries: int, retry_intervals, timeout: int | None,
             at_most_once: bool | None = None) -> dict[str, Any]:
    """The record fields an enqueue's options set, checked."""
    if validation.queue_name(queue) not in settings.RQ_QUEUES:
        raise ValueError(f"unknown queue {queue!r}; configured: {', '.join(settings.RQ_QUEUES)}")
    timeout = validation.timeout(timeout)
    if at_most_once is None:
        at_most_once = jobs_setting("JOBS_AT_MOST_ONCE")
    return dict(queue_name=queue, max_retries=validation.retries(retries),
                retry_intervals=validation.intervals(retry_intervals), at_most_once=bool(at_most_once),
                timeout=timeout or settings.RQ_QUEUES[queue].get("DEFAULT_TIMEOUT",
                                                                 jobs_setting("JOBS_DEFAULT_TIMEOUT")))


def _new_record(**values) -> BackgroundTaskRecord:
    """BackgroundTaskRecord(**values), built positionally in field order, Django's fast path
    (the one Model.from_db takes): keyword construction looks up every field's default and
    cost two thirds of build_record, and a third of enqueue_many (measured in bench/enqueue.py)."""
    row = []
    for field, default in _field_defaults():
        if field.attname in values:
            value = values[field.attname]
            row.append(list(value) if isinstance(value, list) else value)  # no list shared by two records
        else:
            row.append(field.get_default() if default is _CALL else default)
    return BackgroundTaskRecord(*row)


_CALL = object()


@functools.cache
def _field_defaults() -> list[tuple[Any, Any]]:
    """Each concrete field, with its default, or _CALL where each record needs its own (uuid4, list)."""
    return [(field, _CALL if field.has_default() and callable(field.default) else field.get_default())
            for field in BackgroundTaskRecord._meta.concrete_fields]


def enqueue(func_or_path: Callable | str, *args, queue: str = "default", retries: int = 0,
            retry_intervals: int | Sequence[int] | None = None, timeout: int | None = None,
            delay: timedelta | int | float | None = None, at_most_once: bool | None = None,
            unique_key: str | None = None, backoff: str | None = None, backoff_base: float | None = None,
            backoff_factor: float | None = None, backoff_max: float | None = None,
            backoff_jitter: float | None = None, retry_on: Sequence = (), discard_on: Sequence = (),
            on_exhausted: str | Callable | None = None, limit: tuple[str, int] | None = None,
            **kwargs) -> BackgroundTaskRecord:
    """Record a job in the caller's transaction and push it to RQ once that commits.

    A rolled-back transaction leaves neither row nor job. Arguments must be JSON: the
    first one that is not raises TypeError before anything is written. `at_most_once`
    (default: JOBS_AT_MOST_ONCE) fails, instead of requeueing, a job whose worker shut
    down or was lost. `unique_key`: while a job with that key is pending or running, return
    that job's record instead (no second row, no second RQ job); see save_unique. `backoff`,
    `retry_on`, `discard_on` and `on_exhausted`: the retry policy (jobs.retry_policy). `limit`:
    (key, n), at most n jobs with that key run at once (jobs.limits).
    """
    policy = retry_policy.build(backoff, base=backoff_base, factor=backoff_factor, maximum=backoff_max,
                                jitter=backoff_jitter, retry_on=retry_on, discard_on=discard_on,
                                on_exhausted=on_exhausted)
    record = build_record(func_or_path, args, kwargs, queue=queue, retries=retries,
                          retry_intervals=retry_intervals, timeout=timeout, delay=delay, at_most_once=at_most_once,
                          unique_key=unique_key, policy=policy, limit=limit)
    if record.unique_key is not None:
        return save_unique(record)
    save_and_push([record])
    return record


@dataclass(frozen=True)
class Call:
    """One call for enqueue_many: Call(func, 1, 2, key="value")."""

    func: Callable | str
    args: tuple
    kwargs: dict

    def __init__(self, func: Callable | str, *args, **kwargs):
        object.__setattr__(self, "func", func)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)


def enqueue_many(calls: Iterable[Call], *, queue: str = "default", retries: int = 0,
                 retry_intervals=None, timeout: int | None = None,
                 at_most_once: bool | None = None) -> list[BackgroundTaskRecord]:
    """Enqueue many jobs with one INSERT (COPY on PostgreSQL) and, after commit, one Redis
    call per thousand jobs."""
    options = _options(queue, retries, retry_intervals, timeout, at_most_once)
    records = []
    for call in calls:
        func_path = func_path_of(call.func)
        _check_json(call.args, call.kwargs)
        records.append(_new_record(func_path=func_path, args=list(call.args), kwargs=dict(call.kwargs),
                                   enqueued_at=timezone.now(), **options))
    save_and_push(records)
    return records


def save_and_push(records: list[BackgroundTaskRecord]) -> None:
    """INSERT records made by build_record in the caller's transaction; push them to RQ once it commits."""
    # pushed_at goes in with the INSERT instead of a second write after the push: that
    # write cost a third of a single enqueue (an UPDATE and its commit). Only a push that
    # fails writes again, to clear it. The reconciler does not need the flag to find a job
    # that never reached Redis: it reads Redis for every pending row past the grace period,
    # so a crash between commit and push still gets the job pushed.
    if not records:
        return
    for record in records:
        record.pushed_at = record.enqueued_at
    if len(records) == 1:
        insert_one(records[0])
    else:
        insert_many(BackgroundTaskRecord, records)
    _push_on_commit(records)


class _PushOnCommit:
    """save_and_push's on-commit callback: push these records once the transaction commits."""

    def __init__(self, records: Sequence[BackgroundTaskRecord]):
        self.records = list(records)

    def __call__(self) -> None:
        push_many(self.records)


def _push_on_commit(records: Sequence[BackgroundTaskRecord]) -> None:
    """Push `records` after the caller's transaction commits (at once outside one).

    Jobs enqueued one after another in one transaction share a callback, so they reach Redis
    in one call at commit (PUSH_CHUNK per call) instead of one call each, which was a third
    of a single enqueue inside a transaction (bench/enqueue.py). Django keeps each callback
    with the savepoints open when it was registered and drops it if one of them rolls back:
    a record joins the last callback only when nothing was registered after it and the same
    savepoints are open, so exactly the jobs whose rows are rolled back are never pushed.
    """
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        try:
            savepoints, callback, _robust = connection.run_on_commit[-1]
        except (IndexError, TypeError, ValueError):  # none yet (or a Django that keeps them otherwise)
            callback = None
        if isinstance(callback, _PushOnCommit) and savepoints == set(connection.savepoint_ids):
            callback.records.extend(records)
            return
    transaction.on_commit(_PushOnCommit(records))


def job(queue: str = "default", retries: int = 0, retry_intervals=None, timeout: int | None = None,
        at_most_once: bool | None = None):
    """Decorator giving a function an ``.enqueue(*args, **kwargs)`` shortcut with these options."""
    def decorate(func):
        func.enqueue = functools.partial(enqueue, func, queue=queue, retries=retries,
                                         retry_intervals=retry_intervals, timeout=timeout, at_most_once=at_most_once)
        return func
    return decorate


# --- operator actions --------------------------------------------------------------

def audit(user, action: str, record: BackgroundTaskRecord | None = None, outcome: str = "ok",
          **detail) -> AuditEntry:
    """Write one audit row: who did what to which record."""
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return AuditEntry.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "system",
        action=action, record_id=record.pk if record else None, outcome=outcome, detail=detail,
    )


def retry(record: BackgroundTaskRecord, user=None) -> BackgroundTaskRecord:
    """Run a failed or cancelled job again as the next attempt of the same row.

    The conditional UPDATE to pending is the lock: of concurrent retries exactly one
    wins, the others raise ActionNotAllowed and push nothing. A job whose queue was removed
    from RQ_QUEUES raises QueueGone before its row changes (it would stay pending for ever).
    """
    permit(user, "retry")
    if not is_configured(record.queue_name):
        raise QueueGone(f"queue {record.queue_name!r} is no longer configured, so the job cannot run again; "
                        "delete it, or enqueue it anew on a configured queue")
    payload = _payload_for_retry(record)
    try:
        with transaction.atomic():
            if not record.mark_requeued():
                record.refresh_from_db(fields=["status"])
                raise ActionNotAllowed(f"only failed or cancelled jobs can be retried; this one is {record.status}")
            audit(user, ACTIONS["retry"].audit, record)
            transaction.on_commit(functools.partial(_replace_and_push, record, payload))
    except IntegrityError:  # record_unique_key_active: another job holds the key now
        raise ActionNotAllowed(f"another pending or running job holds unique key {record.unique_key!r}; "
                               "it can be retried once that one has ended") from None
    return record


def _payload_for_retry(record: BackgroundTaskRecord):
    """RQ's own copy of a job whose arguments are only a preview here (None for any other job);
    ArgumentsNotStored once Redis no longer holds it."""
    if not record.args_preview:
        return None
    from .adopt import rq_payload

    try:
        payload = rq_payload(record)
    except REDIS_ERRORS as exc:
        raise ActionNotAllowed(f"Redis is unreachable, the job was not retried: {exc}") from None
    if payload is None:
        raise ArgumentsNotStored("this job was enqueued through RQ with arguments that are not JSON, and Redis no "
                                 "longer holds RQ's copy of them: it cannot run again; enqueue it anew")
    return payload


def _replace_and_push(record: BackgroundTaskRecord, payload=None) -> None:
    from .adopt import push_again, requeue_payload

    if payload is not None:  # RQ's own copy of the call: the stored arguments are only a preview
        try:
            requeue_payload(record, payload)
        except REDIS_ERRORS as exc:
            logger.warning("retry of %s: Redis unreachable, RQ's copy of the job was not requeued: %s", record.pk, exc)
        return
    try:
        _delete_rq_job(record)
    except REDIS_ERRORS as exc:
        logger.warning("retry of %s waits for Redis: %s", record.pk, exc)
        return
    push_again(record)  # jobs.push, after moving a custom RQ id's job under the row's id


def _delete_rq_job(record: BackgroundTaskRecord) -> None:
    """Remove the record's RQ job and its registry entries, if Redis still has them."""
    try:
        Job.fetch(record.rq_job_id, connection=get_connection(record.queue_name)).delete(remove_from_queue=True)
    except NoSuchJobError:
        pass


def cancel(record: BackgroundTaskRecord, user=None) -> str:
    """Cancel a job: a pending one leaves its queue at once ("cancelled"); a running one
    is sent RQ's stop command and ends cancelled when its worker confirms ("stopping").
    A row still pending whose RQ job a worker has already started (its start write is on
    the way) is stopped like a running one: cancelling it in Redis would not stop it.
    """
    permit(user, "cancel")
    record.refresh_from_db()
    if record.status == Status.PENDING:
        try:
            queued = _cancel_in_redis(record)
        except REDIS_ERRORS as exc:
            raise ActionNotAllowed(f"Redis is unreachable, the job was not cancelled: {exc}") from None
        if queued:
            with transaction.atomic():
                if record.mark_cancelled(reason=f"cancelled by {_name(user)}"):
                    audit(user, ACTIONS["cancel"].audit, record, outcome="cancelled")
                    return "cancelled"
            record.refresh_from_db()  # a worker picked it up meanwhile: stop it instead
    if record.status in (Status.PENDING, Status.RUNNING):
        with transaction.atomic():
            requested = record.mark_cancel_requested()
            if requested:
                audit(user, ACTIONS["cancel"].audit, record, outcome="stopping", worker=record.worker_name)
        if requested:
            send_stop(record)
            return "stopping"
        record.refresh_from_db()  # it ended since it was read: nothing left to stop
    raise ActionNotAllowed(f"only pending or running jobs can be cancelled; this one is {record.status}")


def _cancel_in_redis(record: BackgroundTaskRecord) -> bool:
    """Cancel the record's RQ job unless a worker has started it; False if one has."""
    connection = get_connection(record.queue_name)
    try:
        rq_job = Job.fetch(record.rq_job_id, connection=connection)
        if rq_job.get_status(refresh=False) == JobStatus.STARTED:
            return False
        rq_job.cancel()
    except (NoSuchJobError, InvalidJobOperation):
        pass  # gone already, or cancelled already: the row decides
    return True


def send_stop(record: BackgroundTaskRecord) -> bool:
    """Send RQ's stop-job command for a running record; False if no worker holds it yet."""
    from rq.command import send_stop_job_command

    try:
        send_stop_job_command(get_connection(record.queue_name), record.rq_job_id)
        return True
    except (NoSuchJobError, InvalidJobOperation, *REDIS_ERRORS) as exc:
        logger.info("stop of %s not sent now (%s); the reconciler will resend it", record.pk, exc)
        return False


def delete(record: BackgroundTaskRecord, user=None) -> None:
    """Delete a finished job's row and whatever Redis still holds of it."""
    permit(user, "delete")
    if not record.is_final:
        raise ActionNotAllowed(f"only finished jobs can be deleted; this one is {record.status}; cancel it first")
    try:
        _delete_rq_job(record)
    except REDIS_ERRORS as exc:
        logger.warning("deleting %s: Redis unreachable, its RQ keys expire on their own: %s", record.pk, exc)
    with transaction.atomic():
        audit(user, ACTIONS["delete"].audit, record, func_path=record.func_path, status=record.status)
        deleted, _ = BackgroundTaskRecord.objects.filter(pk=record.pk, status__in=[
            Status.COMPLETED, Status.FAILED, Status.CANCELLED]).delete()
        if not deleted:
            raise ActionNotAllowed("the job changed state meanwhile; nothing was deleted")


def _name(user) -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else "system"


# --- queues --------------------------------------------------------------------------

def paused_queues() -> set[str]:
    """Names of the queues an operator paused; workers skip them (see jobs.worker)."""
    from .worker import PAUSED_KEY

    return {m.decode() for m in get_connection().smembers(PAUSED_KEY)}


def pause_queue(queue_name: str, user=None) -> None:
    """Pause a queue: it keeps its jobs, workers stop taking new ones from it."""
    permit(user, "pause")
    _set_paused(queue_name, True, user)


def resume_queue(queue_name: str, user=None) -> None:
    """Resume a paused queue."""
    permit(user, "resume")
    _set_paused(queue_name, False, user)


def _set_paused(queue_name: str, paused: bool, user) -> None:
    from .worker import PAUSED_KEY

    if queue_name not in settings.RQ_QUEUES:
        raise ActionNotAllowed(f"unknown queue {queue_name!r}")
    connection = get_connection()
    (connection.sadd if paused else connection.srem)(PAUSED_KEY, queue_name)
    audit(user, ACTIONS["pause" if paused else "resume"].audit, queue=queue_name)


# Worker controls live in jobs.control (this module was past 400 lines); they are part of the api.
from .control import QUIET_KEY, quiet_worker, quiet_workers, stop_worker, unquiet_worker  # noqa: F401
from .scheduled import reschedule, run_now  # noqa: F401 (scheduled jobs: run now, move)
from .unique import save_unique  # unique jobs: their INSERT, in a savepoint (enqueue calls it)
