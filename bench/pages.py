"""Page speed: p50/p95 server time of every page and its htmx fragment over a million rows.

    .venv-bench/bin/python bench/pages.py [--samples 30] [--database jobdeck_perf]

Runs in-process through Django's test Client as a staff superuser (server time: middleware,
views, queries and templates; no network), DEBUG off. Needs the database bench/seed.py
fills (`jobs_seed --records 1000000`). Like a deployment, the clock has just taken its
per-minute sample (jobs.samples.take_samples, timed here too), and a private redis-server
holds four registered workers. Each URL is warmed up, then timed `--samples` times; the
query count comes from one extra request. Replaces tests/dashboard/bench_dashboard.py.
"""

from __future__ import annotations

import argparse
import os
import time

from common import setup_django, summary, table

PAGE_MS, FRAGMENT_MS, DEEP_RATIO = 100, 25, 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--database", default="jobdeck_perf")
    parser.add_argument("--min-records", type=int, default=1_000_000)
    options = parser.parse_args()

    from jobs.redis_server import RedisServer

    redis = RedisServer().start()
    os.environ["REDIS_URL"] = redis.url
    try:
        setup_django(options.database)
        run(options, redis.url)
    finally:
        redis.stop()


def run(options, redis_url: str) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from dashboard import paging
    from jobs.models import AuditEntry, BackgroundTaskRecord
    from jobs.samples import take_samples

    settings.RQ_QUEUES = {n: {**c, "URL": redis_url} for n, c in settings.RQ_QUEUES.items()}
    total = BackgroundTaskRecord.objects.count()
    if total < options.min_records:
        raise SystemExit(f"{options.database} holds {total:,} records: run bench/seed.py first")
    _workers(redis_url)
    if AuditEntry.objects.count() < 10_000:
        AuditEntry.objects.bulk_create([AuditEntry(username="ops", action="retry") for _ in range(10_000)])
    started = time.perf_counter()
    take_samples()
    sample_ms = (time.perf_counter() - started) * 1000

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)

    newest = BackgroundTaskRecord.objects.order_by("-enqueued_at", "-id")
    oldest = list(BackgroundTaskRecord.objects.order_by("enqueued_at", "id").values_list("enqueued_at", "id")[:51])
    deep = paging.encode(*oldest[-1])  # the last page: the 50 oldest rows
    failed = BackgroundTaskRecord.objects.failed().order_by("-finished_at").first()
    middle = newest.values_list("enqueued_at", flat=True)[total // 2]
    since, until = middle.strftime("%Y-%m-%dT%H:%M:%S"), (middle.replace(minute=59, second=59)).strftime(
        "%Y-%m-%dT%H:%M:%S")
    rare = str(BackgroundTaskRecord.objects.order_by("enqueued_at").values_list("args", flat=True)[7][0])
    rare_matches = BackgroundTaskRecord.objects.search(rare).count()
    common_matches = BackgroundTaskRecord.objects.search("invoice").count()

    pages = [
        ("overview", "/", ["overview-live"]),
        ("jobs, first page", "/jobs/", ["job-table"]),
        ("jobs, deepest page (cursor)", f"/jobs/?cursor={deep}", ["job-table"]),
        ("jobs, state=failed", "/jobs/?state=failed", ["job-table"]),
        ("jobs, state=pending", "/jobs/?state=pending", ["job-table"]),
        ("jobs, state=completed", "/jobs/?state=completed", ["job-table"]),
        ("jobs, queue=low", "/jobs/?queue=low", ["job-table"]),
        ("jobs, function", "/jobs/?function=jobs.demo.flaky", ["job-table"]),
        ("jobs, queue+state+function", "/jobs/?queue=high&state=failed&function=jobs.demo.flaky", ["job-table"]),
        ("jobs, time range (1 h)", f"/jobs/?since={since}&until={until}", ["job-table"]),
        (f"jobs, search common ({common_matches:,} rows)", "/jobs/?q=invoice", ["job-table"]),
        (f"jobs, search rare ({rare_matches:,} rows)", f"/jobs/?q={rare}", ["job-table"]),
        ("job detail (failed, attempts)", f"/jobs/{failed.pk}/", ["job-live"]),
        ("failures", "/failures/", ["failure-groups"]),
        ("workers", "/workers/", ["worker-table"]),
        ("queues", "/queues/", ["queue-table", "queue-charts"]),
        ("queues, day charts", "/queues/?window=day", ["queue-charts"]),
        ("audit", "/audit/", ["audit-table"]),
    ]
    rows, misses, results = [], [], {}
    for name, url, regions in pages:
        variants = [("page", None)] + [("fragment" + (f" #{r}" if len(regions) > 1 else ""), r) for r in regions]
        for kind, region in variants:
            headers = {} if region is None else {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": region}
            for _ in range(options.warmup):
                client.get(url, **headers)
            times = []
            for _ in range(options.samples):
                started = time.perf_counter()
                response = client.get(url, **headers)
                times.append((time.perf_counter() - started) * 1000)
            with CaptureQueriesContext(connection) as queries:
                client.get(url, **headers)
            p50, p95, worst = summary(times)
            limit = PAGE_MS if region is None else FRAGMENT_MS
            results[(name, kind)] = (p50, p95)
            # 286 is htmx's "stop polling": the answer for a finished job or a closed time range.
            verdict = "ok" if p95 <= limit and response.status_code in (200, 286) else "MISSED"
            if verdict != "ok":
                misses.append(f"{name} {kind}")
            rows.append([name, kind, response.status_code, len(queries), len(response.content) // 1024,
                         p50, p95, worst, f"{limit}", verdict])
    first, deepest = results[("jobs, first page", "fragment")], results[("jobs, deepest page (cursor)", "fragment")]
    # The median says whether depth costs more; a p95 of 20-30 samples is one stalled request.
    ratio, ratio95 = deepest[0] / first[0], deepest[1] / first[1]
    table(f"Pages over {total:,} records (Django test Client, in-process, {options.samples} samples after "
          f"{options.warmup} warm-up)",
          ["page", "variant", "HTTP", "queries", "KiB", "p50 ms", "p95 ms", "max ms", "target p95 ms", ""], rows,
          f"Deepest page / first page (fragment p50): {ratio:.2f} (target at most {DEEP_RATIO}; p95: {ratio95:.2f}). "
          f"The clock's per-minute sample (take_samples, the one full count of completed rows) took "
          f"{sample_ms:.0f} ms. Search terms: common 'invoice', rare '{rare}'. "
          + (f"Missed: {', '.join(misses)}." if misses else "Every target met."))
    _explain(connection)


def _workers(redis_url: str) -> None:
    """Four registered RQ workers in the private Redis, as a small deployment has."""
    from redis import Redis
    from rq import Queue, Worker

    connection = Redis.from_url(redis_url)
    queues = [Queue(name, connection=connection) for name in ("high", "default", "low")]
    for n in range(4):
        worker = Worker(queues, connection=connection, name=f"bench-worker-{n}")
        worker.register_birth()
        worker.heartbeat()


def _explain(connection) -> None:
    """EXPLAIN of the per-state counts every poll runs: index ranges, never the whole table."""
    from datetime import timedelta

    from django.db.models import Count
    from django.utils import timezone

    from jobs.models import BackgroundTaskRecord, Status
    from jobs.stats import SMALL_STATES

    now = timezone.now()
    queries = {
        "small-state counts": BackgroundTaskRecord.objects.order_by().filter(status__in=SMALL_STATES)
        .values("queue_name", "status").annotate(n=Count("*")),
        "completed since the sample": BackgroundTaskRecord.objects.order_by()
        .filter(status=Status.COMPLETED, finished_at__gt=now - timedelta(minutes=1))
        .values("queue_name").annotate(n=Count("pk")),
    }
    print("EXPLAIN ANALYZE of the counts behind every poll:")
    for name, queryset in queries.items():
        plan = queryset.explain(analyze=True)
        print(f"-- {name}\n{plan}\n")


if __name__ == "__main__":
    main()
