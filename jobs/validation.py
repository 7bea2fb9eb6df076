"""The checks enqueue makes on its options and keyword names, before anything is written.

A value the row's columns cannot hold must be refused here, in Python: an INSERT that
overflows a column raises inside the caller's ``transaction.atomic()`` and, on PostgreSQL,
aborts the caller's whole transaction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import timedelta

from .values import safe_repr, type_name

# PostgreSQL's integer, the type of max_retries (PositiveIntegerField) and timeout (IntegerField).
MAX_INT = 2**31 - 1
# Delays and retry intervals share that bound: about 68 years, well inside a datetime.
MAX_SECONDS = MAX_INT


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def retries(value) -> int:
    """`value` as a record's max_retries: a whole number from 0 to MAX_INT."""
    if not _is_int(value):
        raise TypeError(f"retries must be a whole number, got {type_name(value)} {safe_repr(value, 100)}")
    if not 0 <= value <= MAX_INT:
        raise _bad("retries", value, f"a whole number from 0 to {MAX_INT}")
    return int(value)


def timeout(value) -> int | None:
    """`value` as a record's timeout: None (the queue's default), -1 (no limit) or 1 to MAX_INT seconds."""
    if value is None:
        return None
    if not _is_int(value):
        raise TypeError(f"timeout must be a whole number of seconds, got {type_name(value)} {safe_repr(value, 100)}")
    if not (value == -1 or 1 <= value <= MAX_INT):
        raise _bad("timeout", value, f"a whole number of seconds from 1 to {MAX_INT}, or -1 for no limit")
    return int(value)


def seconds(name: str, value, *, allow_none: bool = True) -> float | None:
    """A delay or interval in seconds (a number or a timedelta), finite and at most MAX_SECONDS;
    a negative delay means now (0)."""
    if value is None and allow_none:
        return None
    if isinstance(value, timedelta):
        number = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise _bad(name, value, f"at most {MAX_SECONDS} seconds") from None
    else:
        raise TypeError(f"{name} must be a number of seconds or a timedelta, got {type_name(value)}")
    if not math.isfinite(number) or number > MAX_SECONDS:
        raise _bad(name, value, f"a finite number of seconds, at most {MAX_SECONDS}")
    return max(number, 0.0)


def intervals(value) -> list[int]:
    """Retry intervals as whole seconds: one number, or a sequence of them."""
    if value is None:
        return []
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        return [int(seconds("retry_intervals", value, allow_none=False))]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"retry_intervals must be seconds or a list of seconds, got {type_name(value)}")
    return [int(seconds(f"retry_intervals[{i}]", item, allow_none=False)) for i, item in enumerate(value)]


def keyword_names(kwargs: Mapping) -> None:
    """Refuse a keyword name that is not text a worker can pass and a database can store."""
    for name in kwargs:
        if not isinstance(name, str):
            raise TypeError(f"keyword argument names must be strings, got {safe_repr(name, 100)} "
                            f"({type_name(name)})")
        if "\x00" in name or any("\ud800" <= char <= "\udfff" for char in name):
            raise ValueError(f"keyword argument name {safe_repr(name, 100)} contains a NUL or a lone surrogate, "
                             "which cannot be stored")


def unique_key(value) -> str | None:
    """A unique job's key: None, or text of 1 to 255 characters without NUL."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"unique_key must be text, got {type_name(value)} {safe_repr(value, 100)}")
    if not 1 <= len(value) <= 255 or "\x00" in value:
        raise _bad("unique_key", value, "text of 1 to 255 characters, without NUL")
    return value


def queue_name(value) -> str:
    """The queue option must be a name (a string); whether it is configured is checked by the caller."""
    if not isinstance(value, str):
        raise TypeError(f"queue must be a queue name (str), got {type_name(value)}")
    return value


def _bad(name: str, value, expected: str) -> ValueError:
    return ValueError(f"{name} must be {expected}; got {safe_repr(value, 100)}")
