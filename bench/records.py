"""Helpers the benchmark scripts share."""


def truncate_records() -> None:
    """Empty the tables between rounds without leaving dead rows behind (a DELETE would
    bloat the table and its indexes round after round, and slow the later rounds)."""
    from django.db import connection

    from jobs.models import BackgroundTaskRecord, TaskAttempt

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE jobs_taskattempt, jobs_backgroundtaskrecord")
    else:
        TaskAttempt.objects.all().delete()
        BackgroundTaskRecord.objects.all().delete()
