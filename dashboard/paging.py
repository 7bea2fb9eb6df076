"""Keyset pagination: newest first by (timestamp, id), with a signed cursor.

No OFFSET, so page 1000 costs what page 1 costs. The cursor is signed so a visitor
cannot hand-craft one; a tampered or stale one is a clear 400, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

SALT = "dashboard.paging.cursor"


class BadCursor(ValueError):
    """The cursor was not made by this site (tampered, truncated or from another key)."""


@dataclass
class Page:
    rows: list
    next_cursor: str | None
    is_first: bool


def encode(at: datetime, pk) -> str:
    return signing.dumps([at.isoformat(), str(pk)], salt=SALT)


def decode(cursor: str) -> tuple[datetime, str]:
    try:
        at, pk = signing.loads(cursor, salt=SALT)
        return datetime.fromisoformat(at), str(pk)
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise BadCursor("This page link is not valid (it was changed or has expired). Start again from the "
                        "first page.") from exc


def keyset(queryset: QuerySet, cursor: str | None, size: int, time_field: str) -> Page:
    """One page of `queryset` ordered by (`time_field`, pk) descending, after `cursor`."""
    queryset = queryset.order_by(f"-{time_field}", "-pk")
    if cursor:
        at, pk = decode(cursor)
        try:
            # A genuine cursor of another list (the audit log's integer ids on the job list).
            pk = queryset.model._meta.pk.to_python(pk)
        except ValidationError as exc:
            raise BadCursor("This page link belongs to another list. Start again from the first page.") from exc
        queryset = queryset.filter(Q(**{f"{time_field}__lt": at}) | Q(**{time_field: at, "pk__lt": pk}))
    rows = list(queryset[:size + 1])
    next_cursor = None
    if len(rows) > size:
        rows = rows[:size]
        next_cursor = encode(getattr(rows[-1], time_field), rows[-1].pk)
    return Page(rows=rows, next_cursor=next_cursor, is_first=not cursor)
