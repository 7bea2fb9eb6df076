"""The durable job record.

State changes have one home: the transition table (jobs.models.transitions), carried out
by write intents (jobs.models.intents). The ``mark_*`` methods here are the record's names
for them: each is a conditional write, so repeating one, or racing another, changes nothing
and reports False.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone

from ..actions import PERMISSIONS
from . import intents
from .queries import RecordQuerySet
from .status import FINAL_STATES, Status
from .transitions import apply_to, record_fields


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
    # db_default too: the COPY paths (jobs.seed) name their columns.
    interruptions = models.PositiveIntegerField(
        default=0, db_default=0, help_text="Attempts interrupted by a shutdown or lost with their worker, then requeued: "
                             "they do not use up a retry.")
    at_most_once = models.BooleanField(
        default=False, db_default=False, help_text="Fail, instead of requeueing, a job whose worker shut down or was lost.")
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
    unique_key = models.CharField(
        max_length=255, null=True, blank=True,
        help_text="At most one pending or running job holds this key (enqueue(unique_key=...)).")
    limit_key = models.CharField(
        max_length=100, null=True, blank=True,
        help_text="Concurrency limit (enqueue(limit=(key, n))): at most limit_concurrency jobs with this key at once.")
    limit_concurrency = models.PositiveIntegerField(null=True, blank=True)
    retry_policy = models.JSONField(
        null=True, blank=True,
        help_text="Backoff, exception filters and on-exhausted hook (jobs.retry_policy); empty: retry_intervals.")

    # Jobs enqueued through RQ itself (jobs.adopt): the RQ id when it is not the row's UUID
    # (the row's id is then uuid5 of it), whether the arguments are only a preview, RQ's group.
    rq_id = models.CharField(max_length=255, null=True, blank=True, db_index=True,
                             help_text="The RQ job id when it is not this row's id (a custom id given to RQ).")
    args_preview = models.BooleanField(
        default=False, db_default=False,
        help_text="The arguments were not JSON: what is stored is a preview, which cannot be run again.")
    group_id = models.CharField(max_length=255, null=True, blank=True, db_index=True,
                                help_text="The RQ Group this job was enqueued in.")

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
        constraints = [
            # Unique jobs: one active job per key; the key is free again once the job has ended.
            models.UniqueConstraint(fields=["unique_key"], name="record_unique_key_active",
                                    condition=Q(status__in=["pending", "running"], unique_key__isnull=False)),
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
    def rq_job_id(self) -> str:
        """The id of this record's RQ job: the row's id, unless RQ was given one of its own."""
        return self.rq_id or str(self.pk)

    @property
    def func_name(self) -> str:
        return self.func_path.rsplit(".", 1)[-1]

    @property
    def retries_left(self) -> int:
        # Interrupted and lost attempts that were requeued do not use up a retry.
        return max(0, self.max_retries + 1 - (self.attempts - self.interruptions))

    # --- transitions (the table: jobs.models.transitions; the writes: jobs.models.intents) ---
    def transition(self, event: str, **values) -> bool:
        """A transition that opens or closes no attempt (push, requeue, request_cancel, ...): one
        conditional UPDATE under the table's guard; on success mirror the fields on self."""
        changed = apply_to(type(self).objects.filter(pk=self.pk), event, **values)
        if changed:
            for name, value in record_fields(event, values).items():
                setattr(self, name, value)
        return bool(changed)

    def _carry_out(self, intent: intents.Intent) -> bool:
        done = intent.apply()
        if done:
            self.refresh_from_db()
        return done

    def mark_pushed(self, at: datetime | None = None) -> bool:
        """Note that the RQ job now exists in Redis (outbox flag)."""
        return self.transition("push", pushed_at=at or timezone.now())

    def mark_running(self, *, execution_id: str, worker_name: str, hostname: str, pid: int | None,
                     started_at: datetime | None = None, by_clock: bool = False) -> bool:
        """pending → running: count the attempt and open its attempt row. Idempotent per execution."""
        return self._carry_out(intents.Start(self.pk, execution_id, worker_name=worker_name, hostname=hostname,
                                             pid=pid, started_at=started_at, by_clock=by_clock))

    def mark_completed(self, *, result=None, finished_at: datetime | None = None,
                       started_at: datetime | None = None, execution_id: str | None = None) -> bool:
        """Attempt `execution_id` (None: the current one) → completed, with result and duration."""
        return self._carry_out(intents.Complete(self.pk, execution_id, result=result, finished_at=finished_at,
                                                started_at=started_at))

    def mark_failed(self, *, error_type: str, error_message: str, traceback: str = "",
                    finished_at: datetime | None = None, execution_id: str | None = None) -> bool:
        """Attempt `execution_id` → failed, keeping the last failure's error and traceback."""
        return self._carry_out(intents.Fail(self.pk, execution_id, error_type=error_type,
                                            error_message=error_message, traceback=traceback,
                                            finished_at=finished_at))

    def mark_retrying(self, *, error_type: str, error_message: str, traceback: str = "",
                      scheduled_for: datetime | None = None, finished_at: datetime | None = None,
                      execution_id: str | None = None) -> bool:
        """Attempt `execution_id` failed and RQ will run the job again: pending, scheduled."""
        return self._carry_out(intents.Fail(self.pk, execution_id, error_type=error_type,
                                            error_message=error_message, traceback=traceback,
                                            finished_at=finished_at, retry=True, retry_at=scheduled_for))

    def mark_cancelled(self, *, reason: str = "", finished_at: datetime | None = None,
                       execution_id: str | None = None) -> bool:
        """pending/running → cancelled (by an operator, or attempt `execution_id` stopped)."""
        return self._carry_out(intents.Stop(self.pk, execution_id, error_message=reason, finished_at=finished_at))

    def mark_cancel_requested(self) -> bool:
        """Flag a running job whose stop command has been sent; the worker confirms it. Pending
        too: a job a worker has started while its start write is still on the way."""
        return self.transition("request_cancel", cancel_requested_at=timezone.now())

    def mark_requeued(self) -> bool:
        """failed/cancelled → pending: an operator's retry, the next attempt of the same row."""
        return self.transition("requeue", enqueued_at=timezone.now())

    def set_progress(self, fraction: float | None, message: str = "", execution_id: str | None = None) -> bool:
        """Store a running job's progress (0..1) and message."""
        return intents.Progress(self.pk, execution_id, fraction=fraction, message=message).apply()
