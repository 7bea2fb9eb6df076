"""Keyset pagination: newest first by (timestamp, id), with a signed cursor.

No OFFSET, so page 1000 costs what page 1 costs. The cursor is signed so a visitor
cannot hand-craft one; a tampered or stale one is a clear 400, never a 500. A cursor
points at the row a page starts after: "older" pages read below it, "newer" pages above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

SALT = "dashboard.paging.cursor"
OLDER, NEWER = "o", "n"


class BadCursor(ValueError):
    """The cursor was not made by this site (tampered, truncated or from another key)."""


@dataclass
class Page:
    rows: list
    next_cursor: str | None  # the older page
    is_first: bool
    prev_cursor: str | None = None  # the newer page (None on the first page)


def encode(at: datetime, pk, direction: str = OLDER) -> str:
    return signing.dumps([at.isoformat(), str(pk), direction], salt=SALT)


def decode(cursor: str) -> tuple[datetime, str, str]:
    try:
        at, pk, *rest = signing.loads(cursor, salt=SALT)
        direction = rest[0] if rest else OLDER
        if direction not in (OLDER, NEWER):
            raise ValueError(direction)
        return datetime.fromisoformat(at), str(pk), direction
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise BadCursor("This page link is not valid (it was changed or has expired). Start again from the "
                        "first page.") from exc


def keyset(queryset: QuerySet, cursor: str | None, size: int, time_field: str) -> Page:
    """One page of `queryset` ordered by (`time_field`, pk) descending, older or newer than `cursor`."""
    if not cursor:
        return _older(queryset, None, size, time_field)
    at, pk, direction = decode(cursor)
    try:
        # A genuine cursor of another list (the audit log's integer ids on the job list).
        pk = queryset.model._meta.pk.to_python(pk)
    except ValidationError as exc:
        raise BadCursor("This page link belongs to another list. Start again from the first page.") from exc
    if direction == OLDER:
        return _older(queryset, (at, pk), size, time_field)
    newer = Q(**{f"{time_field}__gt": at}) | Q(**{time_field: at, "pk__gt": pk})
    rows = list(queryset.filter(newer).order_by(time_field, "pk")[:size + 1])
    if len(rows) <= size:
        return _older(queryset, None, size, time_field)  # back at the top: the full first page
    rows = rows[:size][::-1]
    return Page(rows=rows, next_cursor=_cursor(rows[-1], time_field, OLDER), is_first=False,
                prev_cursor=_cursor(rows[0], time_field, NEWER))


def _older(queryset: QuerySet, after: tuple | None, size: int, time_field: str) -> Page:
    queryset = queryset.order_by(f"-{time_field}", "-pk")
    if after:
        at, pk = after
        queryset = queryset.filter(Q(**{f"{time_field}__lt": at}) | Q(**{time_field: at, "pk__lt": pk}))
    rows = list(queryset[:size + 1])
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        next_cursor = _cursor(rows[-1], time_field, OLDER)
    prev_cursor = _cursor(rows[0], time_field, NEWER) if after and rows else None
    return Page(rows=rows, next_cursor=next_cursor, is_first=not after, prev_cursor=prev_cursor)


def _cursor(row, time_field: str, direction: str) -> str:
    return encode(getattr(row, time_field), row.pk, direction)
