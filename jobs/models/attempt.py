"""One attempt (one run) of a record."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class TaskAttempt(models.Model):
    """One execution of a record: every try keeps its own worker, timing and traceback."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        LOST = "lost", "Lost"
        INTERRUPTED = "interrupted", "Interrupted"

    # No database constraint: Django still cascades a record's delete to its attempts, and the
    # only raw deletes (jobs.prune) remove attempts themselves. The constraint's per-row trigger
    # was half the cost of pruning (docs/PERFORMANCE.md). No index of its own either: the
    # unique (record, number) index serves every lookup by record.
    record = models.ForeignKey("jobs.BackgroundTaskRecord", on_delete=models.CASCADE, related_name="attempt_set",
                               db_constraint=False, db_index=False)
    number = models.PositiveIntegerField()
    execution_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker_name = models.CharField(max_length=255, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    error_type = models.CharField(max_length=255, blank=True)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    # A write from this attempt that came after the record had moved on (a cut-off worker that
    # finished anyway): its real outcome, kept here; the record was left as it was.
    late_outcome = models.CharField(max_length=16, blank=True, default="", db_default="", choices=Outcome.choices)
    late_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["record", "number"]
        constraints = [models.UniqueConstraint(fields=["record", "number"], name="attempt_unique_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.record_id}: {self.outcome}"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at and self.started_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None
