"""Typed write intents: what a worker, the clock or a job asks of a record, carried out once.

Each intent names its attempt by execution id and is carried out by `apply()`: on PostgreSQL
first as one statement (jobs.fastpath, the common case), and, when that changes nothing, by
the ORM path below, which decides every case under the row lock. Both take their guards from
the transition table (jobs.models.transitions). The writer (jobs.writer) batches the
statements of several intents and runs `apply_orm()` for those whose statement did not settle.

Fencing: an end from attempt e changes the record only while the record is active and on e
(or pending with no row for e yet: its start write never landed). Otherwise it goes to
attempt e alone: its real outcome recorded there as late, the record unchanged. A write
about an attempt that has no row creates that row, so every run is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .. import fastpath
from ..conf import jobs_setting
from .attempt import TaskAttempt
from .audit import AuditEntry
from .status import Status
from .transitions import FAILED, RUNNING, TABLE, record_fields

RUNNING_OUTCOME = TaskAttempt.Outcome.RUNNING.value
_ROW = ("status", "execution_id", "attempts", "interruptions", "cancel_requested_at", "started_at", "at_most_once")


def _model():
    from .record import BackgroundTaskRecord  # the record's methods build intents: import late

    return BackgroundTaskRecord


def _locked_row(record_id) -> dict | None:
    return _model().objects.select_for_update().filter(pk=record_id).values(*_ROW).first()


def _attempt_of(record_id, execution_id: str | None) -> TaskAttempt | None:
    """Attempt `execution_id` of the record; with None, its running attempt (an unfenced write)."""
    attempts = TaskAttempt.objects.filter(record_id=record_id)
    if execution_id is None:
        return attempts.filter(outcome=RUNNING_OUTCOME).order_by("-number").first()
    return attempts.filter(execution_id=execution_id).order_by("-number").first()


def _update(record_id, fields: dict) -> None:
    _model().objects.filter(pk=record_id).update(**fields, updated_at=timezone.now())


@dataclass
class Intent:
    """Base of the intents: `apply()` carries it out once; `applied` says which event it became."""

    record_id: object
    execution_id: str | None
    applied: str = field(default="", init=False, compare=False)

    def statement(self) -> fastpath.Statement | None:
        """The one-statement form of the common case (PostgreSQL), or None where there is none."""
        return None

    def apply(self) -> bool:
        """Carry the write out; True if it changed the record."""
        if fastpath.enabled():
            statement = self.statement()
            if statement is not None and statement.settled(fastpath.run_one(statement)):
                self.settled_fast()
                return True
        return self.apply_orm()

    def settled_fast(self) -> None:
        """Its statement did it all (called by apply() and by the writer's batches)."""

    def apply_orm(self) -> bool:
        raise NotImplementedError


@dataclass
class Start(Intent):
    """A worker started attempt `execution_id` (or the clock saw it started in Redis: `by_clock`)."""

    worker_name: str = ""
    hostname: str = ""
    pid: int | None = None
    started_at: datetime | None = None
    by_clock: bool = False
    # Writes the row when there is none (a job enqueued through RQ itself: jobs.adopt), once.
    adopt: Callable[[], object] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.started_at = self.started_at or timezone.now()

    def owned(self) -> dict:
        """The fields the worker's start write owns; the clock's writes never blank them."""
        return {"execution_id": self.execution_id, "worker_name": self.worker_name, "hostname": self.hostname,
                "pid": self.pid, "started_at": self.started_at}

    def statement(self, closing: Complete | None = None) -> fastpath.Statement:
        fields = record_fields("start", {})
        attempt = {"outcome": RUNNING_OUTCOME, "error_type": "", "error_message": "", "traceback": "",
                   "late_outcome": ""}
        if closing is not None:
            fields = {**closing.fields(self.started_at), "finished_at": closing.finished_at}
            attempt = {**closing.attempt_fields(), "late_outcome": ""}
        return fastpath.open_statement(_model(), self.record_id, "start", fields, self.owned(), attempt)

    def settled_fast(self) -> None:
        self.applied = "start"

    def apply_orm(self) -> bool:
        with transaction.atomic():
            row = _locked_row(self.record_id)
            if row is None and self.adopt is not None:
                self.adopt()
                row = _locked_row(self.record_id)
            if row is None:
                return False
            attempt = _attempt_of(self.record_id, self.execution_id)
            on_e = row["execution_id"] == self.execution_id
            if attempt is not None or (on_e and row["status"] == RUNNING):
                # Already open (the clock synced it from Redis first, or a repeat): the worker's
                # own fields still land, on the attempt and, while it is current, the record.
                if self.by_clock:
                    return False
                owned = {k: v for k, v in self.owned().items() if k != "execution_id"}
                if attempt is not None:
                    TaskAttempt.objects.filter(pk=attempt.pk).update(**owned)
                if on_e and row["status"] == RUNNING:
                    _update(self.record_id, owned)
                    self.applied = "start"
                    return True
                return False
            number = row["attempts"] + 1
            older = (row["status"] == RUNNING and row["started_at"] is not None
                     and self.started_at < row["started_at"])
            if row["status"] not in TABLE["start"].from_states or older:
                # A run the record has moved past (a late start): count it on its own row.
                _update(self.record_id, {"attempts": number})
                TaskAttempt.objects.create(record_id=self.record_id, number=number, **self.owned())
                self.applied = "late"
                return False
            _update(self.record_id, {**record_fields("start", {}), **self.owned(), "attempts": number})
            # An attempt still running ended without any hook landing.
            TaskAttempt.objects.filter(record_id=self.record_id, outcome=RUNNING_OUTCOME).update(
                outcome=TaskAttempt.Outcome.LOST, finished_at=self.started_at)
            TaskAttempt.objects.create(record_id=self.record_id, number=number, **self.owned())
            self.applied = "start"
            return True


@dataclass
class End(Intent):
    """Attempt `execution_id` ended (None: whichever attempt is current, for unfenced callers)."""

    finished_at: datetime | None = None
    started_at: datetime | None = None
    error_type: str = ""
    error_message: str = ""
    traceback: str = ""

    def __post_init__(self):
        self.finished_at = self.finished_at or timezone.now()
        self.error_type = self.error_type[:255]

    def event(self, row: dict | None = None) -> str:
        raise NotImplementedError

    def fields(self, started_at: datetime | None) -> dict:
        """The record's columns this end writes (besides status and the table's constants)."""
        return record_fields(self.event(), {"finished_at": self.finished_at, "error_type": self.error_type,
                                            "error_message": self.error_message, "traceback": self.traceback})

    def attempt_fields(self) -> dict:
        return {"outcome": TABLE[self.event()].outcome, "finished_at": self.finished_at,
                "error_type": self.error_type, "error_message": self.error_message, "traceback": self.traceback}

    def statement(self) -> fastpath.Statement | None:
        if self.execution_id is None:
            return None
        return fastpath.close_statement(_model(), self.record_id, self.event(), self.execution_id,
                                        self.fields(self.started_at), self.attempt_fields())

    def settled_fast(self) -> None:
        self.applied = self.event()

    def apply_orm(self) -> bool:
        with transaction.atomic():
            row = _locked_row(self.record_id)
            if row is None:
                return False
            event = self.event(row)
            transition = TABLE[event]
            attempt = _attempt_of(self.record_id, self.execution_id)
            if self.execution_id is None or not transition.fenced:
                current = row["status"] in transition.from_states
            else:
                # On e: running on it; or pending on it with its attempt still open or never
                # written (not when the clock closed e as lost and requeued the job: then the
                # record waits for the next run); or pending with no row for e (its start
                # write never landed).
                current = row["status"] in transition.from_states and (
                    (row["execution_id"] == self.execution_id
                     and (row["status"] == RUNNING or attempt is None or attempt.outcome == RUNNING_OUTCOME))
                    or (row["status"] == Status.PENDING and attempt is None))
            self.applied = event if current else "late"
            return self._write(row, event, attempt) if current else self._write_late(row, event, attempt)

    def _write(self, row: dict, event: str, attempt: TaskAttempt | None) -> bool:
        transition = TABLE[event]
        started_at = self.started_at or (row["started_at"] if attempt is not None else None)
        self.applied = event
        fields = dict(self.fields(started_at))
        if transition.interruption:
            fields["interruptions"] = row["interruptions"] + 1
        closing = self.attempt_fields() | {"outcome": transition.outcome}
        if attempt is not None:
            # Its attempt (closed already only when a write for it was repeated or repaired).
            TaskAttempt.objects.filter(pk=attempt.pk).update(**closing)
        elif event != "cancel":
            # The start was never recorded (the database was down then): count that attempt now.
            # (An operator's cancel of a pending job ends no run: it counts none.)
            fields["attempts"] = row["attempts"] + 1
            if self.execution_id:
                fields["execution_id"] = self.execution_id
            TaskAttempt.objects.create(record_id=self.record_id, number=fields["attempts"],
                                       execution_id=self.execution_id or "",
                                       started_at=self.started_at or self.finished_at, **closing)
        _update(self.record_id, fields)
        if row["cancel_requested_at"] and transition.to_state in (Status.COMPLETED, FAILED, Status.CANCELLED):
            # An operator's cancel was waiting: the audit says how it ended.
            AuditEntry.objects.create(username="system", action="cancel", record_id=self.record_id,
                                      outcome="stopped" if event in ("stop", "cancel") else "too-late",
                                      detail={"status": transition.to_state})
        return True

    def _write_late(self, row: dict, event: str, attempt: TaskAttempt | None) -> bool:
        """The record has moved on: the attempt alone gets its real outcome, marked late."""
        outcome = TABLE[event].outcome
        if self.execution_id is None:
            return False
        if attempt is None:
            number = row["attempts"] + 1
            _update(self.record_id, {"attempts": number})
            TaskAttempt.objects.create(
                record_id=self.record_id, number=number, execution_id=self.execution_id,
                started_at=self.started_at or self.finished_at, **self.attempt_fields(),
                late_outcome=outcome, late_at=self.finished_at)
        elif attempt.outcome == RUNNING_OUTCOME:
            TaskAttempt.objects.filter(pk=attempt.pk).update(**self.attempt_fields(), late_outcome=outcome,
                                                              late_at=self.finished_at)
        elif not attempt.late_outcome:
            TaskAttempt.objects.filter(pk=attempt.pk).update(late_outcome=outcome, late_at=self.finished_at)
        return False


@dataclass
class Complete(End):
    """Attempt e returned `result`."""

    result: object = None

    def event(self, row: dict | None = None) -> str:
        return "complete"

    def fields(self, started_at: datetime | None) -> dict:
        duration_ms = None
        if started_at is not None:
            duration_ms = max(int((self.finished_at - started_at).total_seconds() * 1000), 0)
        return record_fields("complete", {"result": self.result, "finished_at": self.finished_at,
                                          "duration_ms": duration_ms})

    def statement(self) -> fastpath.Statement | None:
        # Without its start time the duration is the row's to give: the ORM path reads it.
        return super().statement() if self.started_at is not None else None


@dataclass
class Fail(End):
    """Attempt e raised; `retry` when RQ scheduled another attempt (at `retry_at`)."""

    retry: bool = False
    retry_at: datetime | None = None

    def event(self, row: dict | None = None) -> str:
        return "retry" if self.retry else "fail"

    def fields(self, started_at: datetime | None) -> dict:
        values = {"error_type": self.error_type, "error_message": self.error_message, "traceback": self.traceback}
        if self.retry:
            return record_fields("retry", {**values, "scheduled_for": self.retry_at})
        return record_fields("fail", {**values, "finished_at": self.finished_at})


@dataclass
class Stop(End):
    """Attempt e was stopped on an operator's cancel."""

    def event(self, row: dict | None = None) -> str:
        return "stop" if self.execution_id is not None else "cancel"

    def fields(self, started_at: datetime | None) -> dict:
        return record_fields(self.event(), {"finished_at": self.finished_at, "error_message": self.error_message})


@dataclass
class Interrupt(End):
    """Attempt e was stopped by its worker's shutdown: requeued, unless the job is at-most-once
    or has been interrupted JOBS_MAX_INTERRUPTIONS times already; then it fails."""

    requeue: bool = True
    final_type: str = "WorkerShutdown"
    name: str = "interrupt"

    def event(self, row: dict | None = None) -> str:
        if row is not None:
            self.requeue = self.requeue and not row["at_most_once"] and (
                row["interruptions"] < jobs_setting("JOBS_MAX_INTERRUPTIONS"))
        return self.name if self.requeue else f"{self.name}_final"

    def fields(self, started_at: datetime | None) -> dict:
        if self.requeue:
            return record_fields(self.event(), {"error_type": self.final_type, "error_message": self.error_message})
        return record_fields(self.event(), {"finished_at": self.finished_at, "error_type": self.final_type,
                                            "error_message": self.error_message, "traceback": self.traceback})

    def attempt_fields(self) -> dict:
        return {**super().attempt_fields(), "error_type": self.final_type}

    def statement(self) -> None:
        return None  # rare, and decided from the row (its interruptions): the ORM path only


@dataclass
class Lose(Interrupt):
    """Attempt e's worker stopped beating (killed, or its host gone): the clock's write."""

    final_type: str = "WorkerLost"
    name: str = "lose"


@dataclass
class Progress(Intent):
    """A running job's progress (0..1) and message, from attempt e."""

    fraction: float | None = None
    message: str = ""

    def apply(self) -> bool:
        return self.apply_orm()

    def apply_orm(self) -> bool:
        from ..values import progress_fraction, progress_message

        # A NUL or a lone surrogate in the message used to make the UPDATE fail, and the report was lost.
        fraction, message = progress_fraction(self.fraction), progress_message(self.message)
        rows = _model().objects.filter(pk=self.record_id, status__in=TABLE["progress"].from_states)
        if self.execution_id is not None:
            # Pending too: a job may report before its worker's start write has landed.
            rows = rows.filter(execution_id=self.execution_id) | rows.filter(status=Status.PENDING)
        return bool(rows.update(progress=fraction, progress_message=message, updated_at=timezone.now()))


@dataclass
class Ran(Intent):
    """A start and its completion written together (the job ended before its worker wrote the
    start): on PostgreSQL one statement while neither a cancel nor anything else interferes,
    else exactly the start then the completion."""

    start: Start | None = None
    end: Complete | None = None

    def statement(self) -> fastpath.Statement:
        return self.start.statement(closing=self.end)

    def settled_fast(self) -> None:
        self.applied = "complete"

    def apply_orm(self) -> bool:
        self.start.apply()
        done = self.end.apply()
        self.applied = self.end.applied
        return done
