"""The durable job record.

State changes have one home: the transition methods on BackgroundTaskRecord. Each is a
conditional UPDATE (``WHERE id = … AND status IN (allowed)``), so repeating one, or
racing another, changes nothing and reports False.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from .. import fastpath
from ..actions import PERMISSIONS
from .attempt import TaskAttempt
from .audit import AuditEntry
from .queries import RecordQuerySet
from .status import ACTIVE_STATES, FINAL_STATES, Status


class BackgroundTaskRecord(models.Model):
    """One job, from enqueue to its final state. Its id is the RQ job id."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    func_path = models.CharField(max_length=255)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue_name = models.CharField(max_length=64, default="default")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)

    enqueued_at = models.DateTimeField(default=timezone.now)
    pushed_at = models.DateTimeField(
        null=True, blank=True,
        help_text="Set with the row (the push follows its commit); empty while a push that failed waits for the "
                  "reconciler; set again when the reconciler or a retry pushes it.")
    scheduled_for = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    attempts = models.PositiveIntegerField(default=0)
    max_retries = models.PositiveIntegerField(default=0)
    retry_intervals = models.JSONField(default=list, blank=True)
    timeout = models.IntegerField(null=True, blank=True, help_text="Seconds; -1 for no limit.")

    worker_name = models.CharField(max_length=255, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    execution_id = models.CharField(max_length=64, blank=True)

    result = models.JSONField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error_type = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)

    progress = models.FloatField(null=True, blank=True)
    progress_message = models.CharField(max_length=255, blank=True)

    periodic_entry = models.CharField(max_length=100, null=True, blank=True,
                                      help_text="The periodic entry (JOBS_PERIODIC or @periodic) this run belongs to.")

    objects = RecordQuerySet.as_manager()

    class Meta:
        ordering = ["-enqueued_at", "-id"]
        indexes = [
            # The job list: newest first, optionally by state and queue, keyset-paginated.
            models.Index(fields=["-enqueued_at", "-id"], name="record_newest"),
            models.Index(fields=["status", "-enqueued_at", "-id"], name="record_status_newest"),
            models.Index(fields=["queue_name", "status", "-enqueued_at"], name="record_queue_status"),
            models.Index(fields=["func_path", "-enqueued_at"], name="record_func_newest"),
            # Failures by group, throughput per minute, and completions since the last sample.
            models.Index(fields=["status", "finished_at"], name="record_status_finished"),
            # Live counts of the small states per queue (everything but completed), index-only.
            models.Index(fields=["status", "queue_name"], name="record_status_queue"),
            # The failures page: groups by (function, error type) and each group's newest sample,
            # over the failed rows only (about 1% of a busy table).
            models.Index(fields=["func_path", "error_type", "-finished_at"], name="record_failed_groups",
                         condition=Q(status="failed")),
            # The Crons page: each entry's recent runs, and the overlap check of the clock.
            models.Index(fields=["periodic_entry", "-enqueued_at"], name="record_periodic_newest",
                         condition=Q(periodic_entry__isnull=False)),
        ]
        # operate: every operator action (jobs.actions), as before; the others one action each.
        permissions = [("operate_backgroundtaskrecord", "Can do every operator action"), *PERMISSIONS]

    def __str__(self) -> str:
        return f"{self.func_path} [{self.status}] {self.id}"

    # --- reading -----------------------------------------------------------
    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATES

    @property
    def func_name(self) -> str:
        return self.func_path.rsplit(".", 1)[-1]

    @property
    def retries_left(self) -> int:
        return max(0, self.max_retries + 1 - self.attempts)

    # --- transitions ---------------------------------------------------------
    def _transition(self, allowed: tuple[str, ...], *, only_if: dict | None = None, **fields) -> bool:
        """UPDATE this row only if its status is in `allowed`; on success mirror `fields` on self."""
        fields.setdefault("updated_at", timezone.now())
        changed = type(self).objects.filter(pk=self.pk, status__in=allowed, **(only_if or {})).update(**fields)
        if changed:
            for name, value in fields.items():
                if not hasattr(value, "resolve_expression"):
                    setattr(self, name, value)
        return bool(changed)

    def mark_pushed(self, at: datetime | None = None) -> bool:
        """Note that the RQ job now exists in Redis (outbox flag)."""
        return self._transition((Status.PENDING,), pushed_at=at or timezone.now())

    def mark_running(self, *, execution_id: str, worker_name: str, hostname: str, pid: int | None,
                     started_at: datetime | None = None) -> bool:
        """pending → running: count the attempt and open its attempt row. Idempotent per execution."""
        started_at = started_at or timezone.now()
        if fastpath.enabled():
            fields = {"status": Status.RUNNING, "finished_at": None, "scheduled_for": None,
                      "updated_at": timezone.now()}
            start = {"execution_id": execution_id, "worker_name": worker_name, "hostname": hostname, "pid": pid,
                     "started_at": started_at}
            return self._open_attempt_fast(fields, start)
        with transaction.atomic(savepoint=False):
            row = (type(self).objects.select_for_update()
                   .filter(pk=self.pk).values("status", "execution_id", "attempts").first())
            if row is None or row["status"] not in ACTIVE_STATES or row["execution_id"] == execution_id:
                return False
            number = row["attempts"] + 1
            self._transition(
                ACTIVE_STATES, status=Status.RUNNING, attempts=number, execution_id=execution_id,
                worker_name=worker_name, hostname=hostname, pid=pid, started_at=started_at,
                finished_at=None, scheduled_for=None,
            )
            if row["status"] == Status.RUNNING:
                # Still `running`: the previous attempt ended without any hook landing.
                self.attempt_set.filter(outcome=TaskAttempt.Outcome.RUNNING).update(
                    outcome=TaskAttempt.Outcome.LOST, finished_at=started_at)
            TaskAttempt.objects.create(
                record_id=self.pk, number=number, execution_id=execution_id, started_at=started_at,
                worker_name=worker_name, hostname=hostname, pid=pid,
            )
        return True

    def mark_completed(self, *, result=None, finished_at: datetime | None = None,
                       started_at: datetime | None = None) -> bool:
        """running (or pending, when the start hook was lost) → completed, with result and duration."""
        finished_at = finished_at or timezone.now()
        if started_at is None:
            started_at = type(self).objects.filter(pk=self.pk).values_list("started_at", flat=True).first()
        fields = self._completed_fields(result, finished_at, started_at)
        return self._close(fields, TaskAttempt.Outcome.COMPLETED, finished_at, started_at or finished_at)

    @staticmethod
    def _completed_fields(result, finished_at: datetime, started_at: datetime | None) -> dict:
        duration_ms = int((finished_at - started_at).total_seconds() * 1000) if started_at else None
        return dict(status=Status.COMPLETED, result=result, finished_at=finished_at,
                    duration_ms=max(duration_ms, 0) if duration_ms is not None else None,
                    scheduled_for=None, error_type="", error_message="", traceback="",
                    progress=1.0, cancel_requested_at=None)

    def mark_ran(self, start: dict, completion: dict) -> bool:
        """A start and its completion written together (the job ended before its worker wrote
        the start): the same end as ``mark_running(**start)`` then ``mark_completed(**completion)``.

        On PostgreSQL the common case (the start not yet recorded, no cancel pending) is one
        statement, one row version instead of two; anything else takes exactly those two calls.
        """
        if fastpath.enabled():
            finished_at = completion["finished_at"]
            fields = {**self._completed_fields(completion.get("result"), finished_at,
                                               completion.get("started_at") or start["started_at"]),
                      "updated_at": timezone.now()}
            if self._open_attempt_fast(fields, start, closes=True):
                return True
        self.mark_running(**start)
        return self.mark_completed(**completion)

    def _open_attempt_fast(self, fields: dict, start: dict, closes: bool = False) -> bool:
        """PostgreSQL's one-statement start (jobs.fastpath.open_attempt); on success mirror it on self."""
        number = fastpath.open_attempt(self, fields, closes=closes, **start)
        if number is None:
            return False
        for name, value in {**fields, **start}.items():
            setattr(self, name, value)
        self.attempts = number
        return True

    def mark_failed(self, *, error_type: str, error_message: str, traceback: str = "",
                    finished_at: datetime | None = None) -> bool:
        """running/pending → failed, keeping the last failure's error and traceback."""
        finished_at = finished_at or timezone.now()
        fields = dict(status=Status.FAILED, finished_at=finished_at, scheduled_for=None,
                      error_type=error_type[:255], error_message=error_message, traceback=traceback,
                      cancel_requested_at=None)
        return self._close(fields, TaskAttempt.Outcome.FAILED, finished_at, finished_at, error_type,
                           error_message, traceback)

    def _close(self, fields: dict, outcome: str, finished_at: datetime, started_at: datetime,
               error_type: str = "", error_message: str = "", traceback: str = "") -> bool:
        """An active row ends completed or failed, and so does its running attempt; if its start
        was never recorded, that attempt is counted now."""
        if self._close_fast(fields, outcome, finished_at, started_at, error_type, error_message, traceback):
            return True
        with transaction.atomic(savepoint=False):
            done = self._finish("too-late", **fields)
            if done and not self._close_attempt(outcome, finished_at, error_type, error_message, traceback):
                self._add_missed_attempt(outcome, started_at, finished_at, error_type, error_message, traceback)
        return done

    def mark_retrying(self, *, error_type: str, error_message: str, traceback: str = "",
                      scheduled_for: datetime | None = None, finished_at: datetime | None = None) -> bool:
        """running → pending: this attempt failed and RQ will run the job again (automatic retry)."""
        finished_at = finished_at or timezone.now()
        with transaction.atomic(savepoint=False):
            done = self._transition(
                (Status.RUNNING, Status.PENDING), status=Status.PENDING, scheduled_for=scheduled_for,
                error_type=error_type[:255], error_message=error_message, traceback=traceback,
                progress=None, progress_message="",
            )
            if done:
                self._close_attempt(TaskAttempt.Outcome.FAILED, finished_at, error_type, error_message, traceback)
        return done

    def mark_cancelled(self, *, reason: str = "", finished_at: datetime | None = None) -> bool:
        """pending/running → cancelled."""
        finished_at = finished_at or timezone.now()
        with transaction.atomic(savepoint=False):
            done = self._finish(
                "stopped", status=Status.CANCELLED, finished_at=finished_at, scheduled_for=None,
                error_message=reason,
            )
            if done:
                self._close_attempt(TaskAttempt.Outcome.CANCELLED, finished_at, error_message=reason)
        return done

    def mark_cancel_requested(self) -> bool:
        """Flag a running job whose stop command has been sent; the worker confirms it. Pending
        too: a job a worker has started while its start write is still on the way."""
        return self._transition(ACTIVE_STATES, cancel_requested_at=timezone.now())

    def mark_requeued(self) -> bool:
        """failed/cancelled → pending: an operator's retry, the next attempt of the same row."""
        return self._transition(
            (Status.FAILED, Status.CANCELLED), status=Status.PENDING, pushed_at=None, scheduled_for=None,
            started_at=None, finished_at=None, duration_ms=None, result=None, cancel_requested_at=None,
            error_type="", error_message="", traceback="", progress=None, progress_message="",
            enqueued_at=timezone.now(),
        )

    def _close_fast(self, fields: dict, outcome: str, finished_at: datetime, started_at: datetime,
                    error_type: str = "", error_message: str = "", traceback: str = "") -> bool:
        """PostgreSQL's one-statement close of the row and its running attempt (jobs.fastpath).
        False when it changed nothing: then the ORM path below decides, as on other databases."""
        if not fastpath.enabled():
            return False
        fields = {**fields, "updated_at": timezone.now()}
        attempt = {"outcome": outcome, "finished_at": finished_at, "error_type": error_type[:255],
                   "error_message": error_message, "traceback": traceback}
        changed, closed = fastpath.close_attempt(self, ACTIVE_STATES, fields, attempt)
        if not changed:
            return False
        for name, value in fields.items():
            setattr(self, name, value)
        if not closed:
            with transaction.atomic(savepoint=False):
                type(self).objects.select_for_update().filter(pk=self.pk).values_list("pk").get()
                self._add_missed_attempt(outcome, started_at, finished_at, error_type, error_message, traceback)
        return True

    def _finish(self, cancel_outcome: str, **fields) -> bool:
        """Move an active row to a final state. If an operator's cancel was waiting on it, the
        audit log says how that cancel ended: "stopped", or "too-late" when the job completed or
        failed before the stop landed. The second UPDATE runs only then: one query as a rule."""
        if self._transition(ACTIVE_STATES, only_if={"cancel_requested_at__isnull": True}, **fields):
            return True
        if not self._transition(ACTIVE_STATES, **fields):
            return False
        AuditEntry.objects.create(username="system", action="cancel", record_id=self.pk, outcome=cancel_outcome,
                                  detail={"status": fields["status"]})
        return True

    def _close_attempt(self, outcome: str, finished_at: datetime, error_type: str = "",
                       error_message: str = "", traceback: str = "") -> int:
        return self.attempt_set.filter(outcome=TaskAttempt.Outcome.RUNNING).update(
            outcome=outcome, finished_at=finished_at, error_type=error_type[:255],
            error_message=error_message, traceback=traceback,
        )

    def _add_missed_attempt(self, outcome: str, started_at: datetime, finished_at: datetime, error_type: str = "",
                            error_message: str = "", traceback: str = "") -> None:
        """The job ran and ended, but its start was never recorded (the database was down then):
        count that attempt now. The caller's UPDATE holds the row lock, so the count is safe."""
        number = type(self).objects.filter(pk=self.pk).values_list("attempts", flat=True).get() + 1
        type(self).objects.filter(pk=self.pk).update(attempts=number)
        self.attempts = number
        TaskAttempt.objects.create(
            record_id=self.pk, number=number, started_at=started_at, finished_at=finished_at, outcome=outcome,
            error_type=error_type[:255], error_message=error_message, traceback=traceback,
        )

    def set_progress(self, fraction: float | None, message: str = "") -> bool:
        """Store a running job's progress (0..1) and message."""
        from ..values import progress_fraction, progress_message

        # Pending too: a job may report before its worker's start write has landed. A NUL or a
        # lone surrogate in the message used to make the UPDATE fail, and the report was lost.
        return self._transition(ACTIVE_STATES, progress=progress_fraction(fraction),
                                progress_message=progress_message(message))
