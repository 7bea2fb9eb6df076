"""Per-minute queue samples: the charts' data."""

from __future__ import annotations

from django.db import models


class QueueSample(models.Model):
    """One minute of one queue, taken by the clock: the charts' data."""

    taken_at = models.DateTimeField(db_index=True)
    queue_name = models.CharField(max_length=64)
    pending = models.PositiveIntegerField(default=0)
    scheduled = models.PositiveIntegerField(default=0)
    running = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0, help_text="Rows in the failed state at the sample time.")
    completed_count = models.PositiveIntegerField(default=0, help_text="Jobs completed since the previous sample.")
    failed_count = models.PositiveIntegerField(default=0, help_text="Jobs failed since the previous sample.")
    latency_ms = models.PositiveBigIntegerField(default=0, help_text="Age of the oldest pending job.")
    completed_total = models.PositiveBigIntegerField(
        default=0, help_text="Exact count of completed rows at the sample time: the base of the live counts.")

    class Meta:
        ordering = ["-taken_at"]
        indexes = [models.Index(fields=["queue_name", "-taken_at"], name="sample_queue_newest")]

    def __str__(self) -> str:
        return f"{self.queue_name} at {self.taken_at:%H:%M}: {self.pending} pending"
