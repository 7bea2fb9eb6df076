"""The durable job record, its attempts, the audit log and the queue samples."""

from .attempt import TaskAttempt
from .audit import AuditEntry
from .dependency import JobDependency
from .periodic import PeriodicEntryState
from .queries import RecordQuerySet, SearchText
from .record import BackgroundTaskRecord
from .samples import QueueSample
from .status import ACTIVE_STATES, FINAL_STATES, Status

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "AuditEntry", "BackgroundTaskRecord", "JobDependency", "PeriodicEntryState",
           "QueueSample", "RecordQuerySet",
           "SearchText", "Status", "TaskAttempt"]
