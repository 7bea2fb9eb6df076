"""Retry policies: exponential backoff with jitter, exception filters, the on-exhausted hook.

A record's ``retry_policy`` (None: plain ``retry_intervals``) is built at enqueue by `build`,
travels to the worker in the RQ job's meta (jobs.push), and is applied by the worker's failure
path (jobs.worker.handle_job_failure calls `prepare_failure` before RQ decides): RQ's own
``Retry`` still schedules the next attempt, with the interval this module computed. The hook
runs in the worker's row writer, only when the write that moved the row to failed took effect
(`ExhaustedFail`): a repeated or late write of the same failure does not call it again.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from . import validation
from .conf import jobs_setting
from .models import BackgroundTaskRecord, intents

logger = logging.getLogger(__name__)

META_KEY = "jobdeck_retry_policy"  # the RQ job's meta entry that carries the policy to the worker
BACKOFFS = ("exponential",)
SETTINGS = {"base": "JOBS_BACKOFF_BASE_SECONDS", "factor": "JOBS_BACKOFF_FACTOR",
            "max": "JOBS_BACKOFF_MAX_SECONDS", "jitter": "JOBS_BACKOFF_JITTER"}


def build(backoff: str | None = None, *, base=None, factor=None, maximum=None, jitter=None,
          retry_on: Sequence = (), discard_on: Sequence = (), on_exhausted: str | Callable | None = None
          ) -> dict[str, Any] | None:
    """The record's retry_policy from enqueue's options, checked (ValueError/TypeError); None if none is set."""
    policy: dict[str, Any] = {}
    if backoff is not None:
        if backoff not in BACKOFFS:
            raise ValueError(f"backoff must be one of {', '.join(BACKOFFS)} (or None for retry_intervals); "
                             f"got {backoff!r}")
        given = {"base": base, "factor": factor, "max": maximum, "jitter": jitter}
        for name, value in given.items():
            value = jobs_setting(SETTINGS[name]) if value is None else value
            policy[name] = _number(f"backoff_{name}", value, at_least=1 if name == "factor" else 0)
        policy["backoff"] = backoff
    elif any(value is not None for value in (base, factor, maximum, jitter)):
        raise ValueError('backoff_base, backoff_factor, backoff_max and backoff_jitter need backoff="exponential"')
    for name, classes in (("retry_on", retry_on), ("discard_on", discard_on)):
        paths = [exception_path(name, cls) for cls in _sequence(name, classes)]
        if paths:
            policy[name] = paths
    if on_exhausted is not None:
        policy["on_exhausted"] = _callable_path(on_exhausted)
    return policy or None


def _number(name: str, value, at_least: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not at_least <= value <= validation.MAX_SECONDS:
        raise ValueError(f"{name} must be a finite number from {at_least:g} to {validation.MAX_SECONDS}; "
                         f"got {value!r}")
    return float(value)


def _sequence(name: str, value) -> Sequence:
    if isinstance(value, (type, str)):
        return (value,)
    if not isinstance(value, Sequence):
        raise TypeError(f"{name} must be exception classes (a tuple), got {type(value).__name__}")
    return value


def exception_path(name: str, cls) -> str:
    """An exception class, or its dotted path, as the dotted path stored on the record."""
    if isinstance(cls, type) and issubclass(cls, BaseException):
        return f"{cls.__module__}.{cls.__qualname__}"
    if isinstance(cls, str) and cls.strip():
        return cls if "." in cls else f"builtins.{cls}"
    raise TypeError(f"{name} takes exception classes or their dotted paths, got {cls!r}")


def _callable_path(value: str | Callable) -> str:
    from .api import func_path_of  # the same rule as a job's own function

    return func_path_of(value)


def interval(policy: dict[str, Any], retry_number: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds before the n-th retry: min(base × factor^(n-1), max), plus up to jitter × that."""
    try:
        wait = min(policy["base"] * policy["factor"] ** (retry_number - 1), policy["max"])
    except OverflowError:
        wait = policy["max"]
    return wait + rand() * policy["jitter"] * wait


def not_retried(policy: dict[str, Any], exc_type: type | None) -> str:
    """Why a failure with `exc_type` is not retried under `policy` (discard_on, retry_on); "" if it may be."""
    if exc_type is None:  # the horse was killed or timed out in the main process: no exception to filter
        return ""
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in exc_type.__mro__}
    for path in policy.get("discard_on", ()):
        if path in names:
            return f"discarded: {exc_type.__name__} is in discard_on ({path})"
    if policy.get("retry_on") and not names.intersection(policy["retry_on"]):
        return f"discarded: {exc_type.__name__} is not in retry_on ({', '.join(policy['retry_on'])})"
    return ""


def prepare_failure(job, exc_type: type | None, exc_string: str) -> str:
    """Before RQ handles a failed attempt: apply the job's policy to it (RQ's retries_left and
    retry_intervals, read by RQ's job.retry); returns the failure text, with the reason if discarded."""
    policy = (job.meta or {}).get(META_KEY)
    if not policy:
        return exc_string
    reason = not_retried(policy, exc_type)
    if reason:
        job.retries_left = 0
        return f"{exc_string.rstrip()}\n\n({reason})"
    if job.retries_left and policy.get("backoff"):
        retry_number = policy.get("retries", job.retries_left) - job.retries_left + 1
        job.retry_intervals = [interval(policy, retry_number)]
    return exc_string


def with_hook(intent, job):
    """The outcome write for a failed attempt, as an ExhaustedFail if the job has an on-exhausted hook."""
    policy = (job.meta or {}).get(META_KEY) or {}
    if not policy.get("on_exhausted") or type(intent) is not intents.Fail or intent.retry:
        return intent
    return ExhaustedFail(**{name: getattr(intent, name) for name in intent.__dataclass_fields__
                            if name != "applied"}, hook_path=policy["on_exhausted"])


@dataclass
class ExhaustedFail(intents.Fail):
    """A final failure whose record has an on-exhausted hook: the hook runs if this write moved the row to failed."""

    hook_path: str = ""

    def settled_fast(self) -> None:
        super().settled_fast()
        self._after()

    def apply_orm(self) -> bool:
        done = super().apply_orm()
        self._after()
        return done

    def _after(self) -> None:
        if self.applied == "fail":  # the transition happened (a late or repeated write is not "fail")
            run_hook(self.hook_path, self.record_id)


def run_hook(path: str, record_id) -> bool:
    """Call the on-exhausted hook with the record; a hook that fails is logged, never raised."""
    try:
        hook = import_string(path)
        hook(BackgroundTaskRecord.objects.get(pk=record_id))
        return True
    except Exception:
        logger.exception("on_exhausted hook %s failed for job %s", path, record_id)
        return False


def describe(record: BackgroundTaskRecord) -> list[tuple[str, str]]:
    """The job page's lines for the record's retry policy: (label, text)."""
    policy = record.retry_policy or {}
    lines = []
    if policy.get("backoff"):
        text = (f"exponential: {policy['base']:g} s × {policy['factor']:g}^(n-1), "
                f"at most {policy['max']:g} s, + up to {policy['jitter']:.0%} jitter")
        lines.append(("Backoff", text))
    elif record.retry_intervals:
        lines.append(("Intervals", ", ".join(f"{s} s" for s in record.retry_intervals)))
    for key, label in (("retry_on", "Retry on"), ("discard_on", "Discard on")):
        if policy.get(key):
            lines.append((label, ", ".join(policy[key])))
    if policy.get("on_exhausted"):
        lines.append(("On exhausted", policy["on_exhausted"]))
    return lines
