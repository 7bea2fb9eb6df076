"""What the clock and the operators keep about each periodic entry: pause state and the last slot."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class PeriodicEntryState(models.Model):
    """One periodic entry's durable state, by name: it survives a Redis restart and a clock restart.

    The entry itself lives in settings (JOBS_PERIODIC) or in code (@periodic); this row holds
    only what changes at run time, and outlives the entry so the Crons page can show it as gone.
    """

    name = models.CharField(max_length=100, primary_key=True)
    active_since = models.DateTimeField(
        default=timezone.now,
        help_text="Slots from this time on count as missed when no clock ran them; set when a clock first "
                  "sees the entry and on resume (slots missed while paused are not caught up).")
    last_slot_at = models.DateTimeField(null=True, blank=True,
                                        help_text="The newest slot the clock handled: enqueued, or skipped.")
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=150, blank=True)
    skipped_at = models.DateTimeField(null=True, blank=True, help_text="The newest slot skipped, if any.")
    skip_reason = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}{' (paused)' if self.paused_at else ''}"

    @property
    def paused(self) -> bool:
        return self.paused_at is not None
