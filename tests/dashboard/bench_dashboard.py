"""Time the dashboard's pages over a big table (not collected by pytest; run by hand):

    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE jobdeck_dash_bench"
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobdeck_dash_bench JOBDECK_VAR_DIR=/tmp/dash-bench \\
        .venv/bin/python tests/dashboard/bench_dashboard.py 1000000

Prints the median time and query count of each page, including a page deep in the list.
"""

import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
import django  # noqa: E402

django.setup()
from django.conf import settings  # noqa: E402

settings.ALLOWED_HOSTS = ["*"]
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, reset_queries  # noqa: E402
from django.test import Client  # noqa: E402
from django.utils import timezone  # noqa: E402

from dashboard import paging  # noqa: E402
from jobs.models import BackgroundTaskRecord, Status  # noqa: E402


def seed(total: int) -> None:
    have = BackgroundTaskRecord.objects.count()
    now, batch = timezone.now(), []
    states = [Status.COMPLETED] * 90 + [Status.FAILED] * 6 + [Status.PENDING] * 3 + [Status.CANCELLED]
    funcs = [f"app.tasks.job_{i}" for i in range(40)]
    for i in range(have, total):
        status = random.choice(states)
        at = now - timedelta(seconds=i * 2.5)
        batch.append(BackgroundTaskRecord(
            id=uuid.uuid4(), func_path=random.choice(funcs), args=[i], queue_name=random.choice(["default", "high", "low"]),
            status=status, enqueued_at=at, finished_at=at + timedelta(seconds=1) if status != Status.PENDING else None,
            error_type="ValueError" if status == Status.FAILED else "", error_message="boom" if status == Status.FAILED else ""))
        if len(batch) == 10_000:
            BackgroundTaskRecord.objects.bulk_create(batch)
            batch = []
    if batch:
        BackgroundTaskRecord.objects.bulk_create(batch)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE jobs_backgroundtaskrecord")


def measure(client: Client, url: str, runs: int = 5) -> tuple[float, int, int]:
    settings.DEBUG = True
    times, queries = [], 0
    for _ in range(runs):
        reset_queries()
        start = time.perf_counter()
        response = client.get(url, HTTP_HX_REQUEST="true")
        times.append((time.perf_counter() - start) * 1000)
        queries = len(connection.queries)
    return statistics.median(times), queries, response.status_code


def main(total: int) -> None:
    call_command("migrate", verbosity=0)
    seed(total)
    user, _ = get_user_model().objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    deep = BackgroundTaskRecord.objects.order_by("-enqueued_at", "-id").values_list("enqueued_at", "id")[total - 100]
    pages = {
        "overview": "/", "jobs, page 1": "/jobs/", "jobs, failed": "/jobs/?state=failed",
        "jobs, queue+state": "/jobs/?queue=low&state=completed", "jobs, function": "/jobs/?function=app.tasks.job_7",
        f"jobs, row {total - 100:,} (cursor)": "/jobs/?cursor=" + paging.encode(*deep),
        "jobs, search 'job_7'": "/jobs/?q=job_7", "failures": "/failures/", "queues": "/queues/", "audit": "/audit/",
    }
    print(f"{BackgroundTaskRecord.objects.count():,} records on {connection.vendor}")
    for name, url in pages.items():
        ms, queries, status = measure(client, url)
        print(f"{name:34} {ms:8.1f} ms  {queries:3} queries  HTTP {status}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
