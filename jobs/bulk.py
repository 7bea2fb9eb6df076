"""Bulk operator actions: retry, cancel or delete many records, in chunks, through jobs.api.

Each record goes through the same api function a single click uses (the action's row in
jobs.actions), so each is its own transaction, audited, and refused (skipped, with the reason)
when it no longer applies. A bulk run needs the bulk permission besides the action's own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q, QuerySet

from . import api
from .actions import ACTIONS, BULK, BULK_VERBS, permitted
from .models import BackgroundTaskRecord


@dataclass
class BulkResult:
    """How many records an action changed, and why the others were skipped."""

    action: str
    succeeded: int = 0
    outcomes: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    @property
    def skipped_count(self) -> int:
        return sum(self.skipped.values())

    @property
    def total(self) -> int:
        return self.succeeded + self.skipped_count


def chunks(queryset: QuerySet, *, upto: tuple[datetime, str] | None, limit: int,
           chunk_size: int) -> Iterator[list[BackgroundTaskRecord]]:
    """The queryset's rows, newest first, at or below the (enqueued_at, id) bound `upto`,
    at most `limit` of them, `chunk_size` at a time.

    Keyset, not OFFSET: a retried row gets a new enqueued_at above the bound and a deleted
    one disappears, and neither shifts the rows still to come.
    """
    queryset = queryset.order_by("-enqueued_at", "-pk")
    if upto is not None:
        at, pk = upto
        queryset = queryset.filter(Q(enqueued_at__lt=at) | Q(enqueued_at=at, pk__lte=pk))
    seen = 0
    while seen < limit:
        batch = list(queryset[:min(chunk_size, limit - seen)])
        if not batch:
            return
        seen += len(batch)
        yield batch
        last = batch[-1]
        queryset = queryset.filter(Q(enqueued_at__lt=last.enqueued_at) | Q(enqueued_at=last.enqueued_at,
                                                                             pk__lt=last.pk))


def check_permitted(action: str, user) -> None:
    """Raise api.NotPermitted unless `user` may do `action` in bulk (its own permission and the bulk one)."""
    if action not in BULK_VERBS:
        raise ValueError(f"unknown bulk action {action!r}")
    if user is not None and not (permitted(user, BULK) and ACTIONS[action].allowed(user)):
        raise api.NotPermitted(f"{action} in bulk needs “{BULK}” and “{ACTIONS[action].permission}”")


def run(action: str, batches: Iterable[list[BackgroundTaskRecord]], user=None) -> BulkResult:
    """Apply `action` to every record of every batch; returns the tally. Audits a summary row too.

    Raises api.NotPermitted, before touching any record, unless `user` may do it in bulk.
    """
    check_permitted(action, user)
    result = BulkResult(action)
    for batch in batches:
        for record in batch:
            try:
                outcome = ACTIONS[action].run(record, user)
            except api.ActionNotAllowed as exc:
                result.skipped[_reason(str(exc))] += 1
                continue
            result.succeeded += 1
            result.outcomes[outcome if isinstance(outcome, str) else ACTIONS[action].done] += 1
    api.audit(user, f"bulk-{action}", None, outcome="ok", succeeded=result.succeeded,
              skipped=dict(result.skipped))
    return result


def _reason(message: str) -> str:
    """The refusal without its '; cancel it first' style advice, so equal reasons group."""
    return message.split("; cancel it first")[0]
