"""A job's history as a flat list of events for the detail page: enqueued, each attempt's
start and end (worker, host), a requested cancel, and any scheduled (re)try."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jobs.models import BackgroundTaskRecord, Status, TaskAttempt


@dataclass
class Event:
    at: datetime | None
    label: str
    detail: str = ""
    css: str = ""
    attempt: TaskAttempt | None = None


def timeline(record: BackgroundTaskRecord, attempts: list[TaskAttempt]) -> list[Event]:
    events = [Event(record.enqueued_at, "enqueued", f"on queue {record.queue_name}")]
    for attempt in attempts:
        where = " · ".join(str(p) for p in (attempt.worker_name, attempt.hostname,
                                            f"pid {attempt.pid}" if attempt.pid else "") if p)
        events.append(Event(attempt.started_at, f"attempt {attempt.number} started", where, "run", attempt))
        if attempt.finished_at:
            detail = attempt.error_type or ""
            events.append(Event(attempt.finished_at, f"attempt {attempt.number} {attempt.outcome}", detail,
                                _css(attempt.outcome), attempt))
    if record.cancel_requested_at:
        events.append(Event(record.cancel_requested_at, "cancel requested", "stop command sent to the worker", "warn"))
    if record.status == Status.PENDING and record.scheduled_for:
        label = "retry scheduled" if record.attempts else "scheduled"
        events.append(Event(record.scheduled_for, label, "waits in the scheduled registry", "info"))
    if record.is_final and not attempts and record.finished_at:
        events.append(Event(record.finished_at, record.status, record.error_message, _css(record.status)))
    return events


def _css(outcome: str) -> str:
    return {"completed": "ok", "failed": "bad", "lost": "bad", "cancelled": "muted"}.get(outcome, "")
