"""A job's history as a flat list of events for the detail page: enqueued, each attempt's
start and end (worker, host), a requested cancel, and any scheduled (re)try.

At-least-once is shown, not hidden: an attempt interrupted by a shutdown or lost with its
worker says the job was requeued, and a late write from such an attempt (a cut-off worker
that finished anyway) shows as "attempt 2 lost, later completed at 12:03:10"."""

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
            events.append(Event(attempt.finished_at, _ended(attempt), _detail(attempt, record),
                                _css(attempt.outcome), attempt))
    if record.cancel_requested_at:
        events.append(Event(record.cancel_requested_at, "cancel requested", "stop command sent to the worker", "warn"))
    if record.status == Status.PENDING and record.scheduled_for:
        label = "retry scheduled" if record.attempts else "scheduled"
        events.append(Event(record.scheduled_for, label, "waits in the scheduled registry", "info"))
    if record.is_final and not attempts and record.finished_at:
        events.append(Event(record.finished_at, record.status, record.error_message, _css(record.status)))
    return events


def _ended(attempt: TaskAttempt) -> str:
    """"attempt 2 lost", or, with a late write, "attempt 2 lost, later completed at 12:03:10"."""
    label = f"attempt {attempt.number} {attempt.outcome}"
    if attempt.late_outcome and attempt.late_at:
        label += f", later {attempt.late_outcome} at {attempt.late_at:%H:%M:%S}"
    return label


def _detail(attempt: TaskAttempt, record: BackgroundTaskRecord) -> str:
    requeued = attempt.outcome in (TaskAttempt.Outcome.INTERRUPTED, TaskAttempt.Outcome.LOST) and (
        attempt.number < record.attempts or record.status == Status.PENDING)
    parts = [attempt.error_type or "", "requeued" if requeued else ""]
    if attempt.late_outcome:
        parts.append("the record had moved on: this late result did not change it")
    return " · ".join(p for p in parts if p)


def _css(outcome: str) -> str:
    return {"completed": "ok", "failed": "bad", "lost": "warn", "interrupted": "warn",
            "cancelled": "muted"}.get(outcome, "")
