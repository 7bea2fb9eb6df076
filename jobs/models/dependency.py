"""What a job enqueued through RQ with `depends_on` waits for."""

from __future__ import annotations

from django.db import models


class JobDependency(models.Model):
    """One parent of a record: the RQ id of a job it waits on (jobs.adopt writes these)."""

    # No database constraint, as for attempts: jobs.prune deletes records with raw statements.
    record = models.ForeignKey("jobs.BackgroundTaskRecord", on_delete=models.CASCADE, related_name="dependencies",
                               db_constraint=False)
    parent_rq_id = models.CharField(max_length=255, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["record", "parent_rq_id"], name="dependency_unique")]

    def __str__(self) -> str:
        return f"{self.record_id} waits on {self.parent_rq_id}"
