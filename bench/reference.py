"""Reference columns: the failed-jobs views of django-rq and rq-dashboard against jobdeck's.

    .venv-bench/bin/python bench/reference.py [--sizes 5000,50000] [--samples 20]

Needs .venv-bench (bench/requirements.txt: rq-dashboard 0.9 and six). For each size N:
N failed jobs written with plain RQ into a private redis-server (Job.create + the
FailedJobRegistry through one pipeline per thousand, as a failing worker leaves them), and
N failed records in jobdeck's own database (jobdeck_perf_ref, `jobs_seed` with every row
failed). Then, each warmed up and timed `--samples` times in-process:
django-rq's failed-jobs page through Django's test Client as a superuser (bench/urls.py
mounts django_rq.urls); rq-dashboard's failed-jobs page and the JSON it loads, through
Flask's test client; jobdeck's failures page and its failed-jobs list.
"""

from __future__ import annotations

import argparse
import os
import time

from common import setup_django, summary, table

DATABASE = "jobdeck_perf_ref"
TRACEBACK = "Traceback (most recent call last):\n  File \"app/tasks.py\", line 12, in charge\nValueError: declined\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,50000")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    options = parser.parse_args()

    from jobs.redis_server import RedisServer

    redis = RedisServer().start()
    os.environ["REDIS_URL"] = redis.url  # read by the settings: django-rq's queues point here
    try:
        setup_django(DATABASE)
        rows = []
        for size in [int(s) for s in options.sizes.split(",")]:
            rows += measure(size, redis.url, options)
        table("Failed jobs: jobdeck against django-rq and rq-dashboard (in-process test clients)",
              ["view", "failed jobs", "rows shown", "p50 ms", "p95 ms", "max ms"], rows,
              "django-rq and rq-dashboard read Redis (RQ's FailedJobRegistry, 25 and 50 jobs a page); "
              "jobdeck reads PostgreSQL (50 rows a page; the failures page groups every failed row).")
    finally:
        redis.stop()


def measure(size: int, redis_url: str, options) -> list[list]:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    from jobs.seed import seed_records

    connection_ = _fill_redis(redis_url, size)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_backgroundtaskrecord, jobs_taskattempt")
    seed_records(size, failed_ratio=1.0, active=0, seed=size)

    settings.ROOT_URLCONF = "bench.urls"
    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(user)
    flask = _rq_dashboard(redis_url).test_client()

    views = [
        ("django-rq: failed jobs page", lambda: client.get("/django-rq/queues/0/failed/"), 25),
        ("rq-dashboard: failed jobs page (HTML)", lambda: flask.get("/rq/0/view/jobs/default/failed/50/dsc/1"), 0),
        ("rq-dashboard: failed jobs data (JSON)",
         lambda: flask.get("/rq/0/data/jobs/default/failed/50/dsc/1.json"), 50),
        ("jobdeck: failures page (groups)", lambda: client.get("/failures/"), 0),
        ("jobdeck: failed jobs list", lambda: client.get("/jobs/?state=failed"), 50),
        ("jobdeck: failed jobs list, htmx fragment", lambda: client.get(
            "/jobs/?state=failed", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="job-table"), 50),
    ]
    rows = []
    for name, call, shown in views:
        for _ in range(options.warmup):
            _check(name, call())
        times = []
        for _ in range(options.samples):
            started = time.perf_counter()
            response = call()
            times.append((time.perf_counter() - started) * 1000)
        _check(name, response)
        rows.append([name, size, shown or "-", *summary(times)])
    connection_.flushdb()  # the private server only
    return rows


def _check(name: str, response) -> None:
    status = getattr(response, "status_code", None)
    if status != 200:
        raise RuntimeError(f"{name}: HTTP {status}")


def _fill_redis(redis_url: str, size: int):
    """`size` failed jobs in queue "default", as a worker leaves them."""
    from redis import Redis
    from rq.job import Job, JobStatus
    from rq.registry import FailedJobRegistry

    connection = Redis.from_url(redis_url)
    connection.flushdb()
    registry = FailedJobRegistry("default", connection=connection)
    for start in range(0, size, 1000):
        with connection.pipeline() as pipe:
            for i in range(start, min(start + 1000, size)):
                job = Job.create("jobs.demo.add", args=[i, 1], connection=connection, origin="default")
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                registry.add(job, ttl=-1, exc_string=TRACEBACK, pipeline=pipe)
            pipe.execute()
    return connection


def _rq_dashboard(redis_url: str):
    from rq_dashboard.cli import make_flask_app
    from rq_dashboard.web import setup_rq_connection

    app = make_flask_app(None, None, None, "/rq")
    app.config["RQ_DASHBOARD_REDIS_URL"] = redis_url
    with app.app_context():
        setup_rq_connection(app)
    return app


if __name__ == "__main__":
    main()
