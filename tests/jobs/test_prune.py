"""Retention: jobs_prune deletes old finished records in batches, never active ones."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs.clock import duties
from jobs.models import AuditEntry, BackgroundTaskRecord, Status, TaskAttempt
from jobs.prune import prune_expired, prune_records

pytestmark = pytest.mark.django_db


def make(status: str, age_days: float, *, attempts: int = 1) -> BackgroundTaskRecord:
    at = timezone.now() - timedelta(days=age_days)
    finished = status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    record = BackgroundTaskRecord.objects.create(
        func_path="jobs.demo.add", status=status, enqueued_at=at - timedelta(minutes=1),
        started_at=at if status != Status.PENDING else None, finished_at=at if finished else None)
    for number in range(1, attempts + 1):
        TaskAttempt.objects.create(record=record, number=number, started_at=at, outcome=(
            TaskAttempt.Outcome.RUNNING if status == Status.RUNNING else TaskAttempt.Outcome.FAILED))
    AuditEntry.objects.create(action="retry", record_id=record.pk)
    return record


@pytest.fixture
def aged():
    """Old and new rows in every state."""
    old = {status: make(status, 30) for status in Status.values}
    new = {status: make(status, 1) for status in Status.values}
    return old, new


def test_deletes_only_old_finished_records(aged):
    old, new = aged
    deleted = prune_records(timedelta(days=14))
    assert deleted == 3
    remaining = set(BackgroundTaskRecord.objects.values_list("pk", flat=True))
    assert remaining == {old[Status.PENDING].pk, old[Status.RUNNING].pk, *(r.pk for r in new.values())}


def test_attempts_cascade_and_audit_entries_stay(aged):
    old, _ = aged
    gone = [old[s].pk for s in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)]
    prune_records(timedelta(days=14))
    assert not TaskAttempt.objects.filter(record_id__in=gone).exists()
    assert AuditEntry.objects.filter(record_id__in=gone).count() == 3


def test_dry_run_counts_and_deletes_nothing(aged):
    assert prune_records(timedelta(days=14), dry_run=True) == 3
    assert BackgroundTaskRecord.objects.count() == 10


def test_small_batches_delete_everything_due():
    for _ in range(7):
        make(Status.COMPLETED, 20, attempts=2)
    assert prune_records(timedelta(days=14), batch_size=3) == 7
    assert not BackgroundTaskRecord.objects.exists()
    assert not TaskAttempt.objects.exists()


def test_zero_days_deletes_every_finished_record(aged):
    assert prune_records(timedelta(0)) == 6
    assert set(BackgroundTaskRecord.objects.values_list("status", flat=True)) == {Status.PENDING, Status.RUNNING}


def test_command_defaults_to_the_retention_setting(aged, settings, capsys):
    settings.JOBS_RETENTION_DAYS = 60
    call_command("jobs_prune", "--dry-run")
    assert "would delete 0 finished jobs older than 60 days" in capsys.readouterr().out
    call_command("jobs_prune", "--older-than", "14")
    assert "deleted 3 finished jobs older than 14 days" in capsys.readouterr().out
    assert BackgroundTaskRecord.objects.count() == 7


def test_command_refuses_when_retention_is_disabled(settings):
    settings.JOBS_RETENTION_DAYS = 0
    with pytest.raises(CommandError, match="disables pruning"):
        call_command("jobs_prune")
    assert prune_expired() == 0


def test_command_without_the_setting_uses_the_default_of_14_days(aged, settings, capsys):
    del settings.JOBS_RETENTION_DAYS
    call_command("jobs_prune")
    assert "deleted 3 finished jobs older than 14 days" in capsys.readouterr().out


def test_the_clock_prunes_hourly(aged, settings):
    settings.JOBS_RETENTION_DAYS = 14
    prune = {name: (interval, func) for name, interval, func in duties(15)}["prune"]
    assert prune[0] == 3600
    assert "deleted 3 finished jobs" in prune[1]()
    assert prune[1]() is None  # nothing left to delete: the clock prints nothing


def test_a_last_batch_that_is_exactly_full_ends_the_loop_cleanly():
    for _ in range(6):
        make(Status.FAILED, 20, attempts=3)
    kept = make(Status.FAILED, 1, attempts=2)
    assert prune_records(timedelta(days=14), batch_size=3) == 6
    assert list(BackgroundTaskRecord.objects.values_list("pk", flat=True)) == [kept.pk]
    assert set(TaskAttempt.objects.values_list("record_id", flat=True)) == {kept.pk}
    assert AuditEntry.objects.count() == 7
