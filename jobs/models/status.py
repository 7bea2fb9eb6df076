"""The states a record can be in."""

from django.db import models


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATES = (Status.PENDING, Status.RUNNING)
FINAL_STATES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
