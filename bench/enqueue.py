"""Enqueue speed: plain RQ `Queue.enqueue`, against `jobs.api.enqueue`, against `enqueue_many`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobdeck_bench .venv/bin/python bench/enqueue.py [--jobs 10000]

Every variant enqueues the same no-op job N times into a private redis-server (never the
shared one), timed with time.perf_counter; rounds alternate variants and the median is kept.
DEBUG is off, as in production (DEBUG keeps every query in memory).

- `jobs.api.enqueue (autocommit)`: as a script or a view without a transaction calls it:
  one INSERT, committed (a durable WAL flush), then the push to Redis.
- `jobs.api.enqueue (in a transaction)`: N calls inside one `transaction.atomic()`, as a
  loop or a view that enqueues several jobs: the INSERTs, then one commit and one Redis call
  for all N (consecutive enqueues share one on-commit push, PUSH_CHUNK jobs a call).
- `row only: INSERT + commit`: what the autocommit variant pays before it touches Redis,
  the part plain RQ (Redis without persistence) never pays; on PostgreSQL also with
  `synchronous_commit` off, to show what the WAL flush of that commit costs (jobs.api
  never relaxes a caller's commit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")

from records import truncate_records  # noqa: E402  (bench/records.py, beside this script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=2000, help="jobs for the one-at-a-time variants")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--without-hiredis", action="store_true",
                        help="redis-py's pure-Python protocol even if hiredis is installed (plain RQ too)")
    options = parser.parse_args()
    if options.without_hiredis:
        sys.modules["hiredis"] = None  # redis-py then finds no hiredis and packs and parses in Python

    from jobs.redis_server import RedisServer

    redis = RedisServer().start()
    os.environ["REDIS_URL"] = redis.url
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    settings.RQ_QUEUES = {n: {**c, "URL": redis.url} for n, c in settings.RQ_QUEUES.items()}
    call_command("migrate", verbosity=0)
    try:
        variants = {
            "plain Queue.enqueue": lambda: plain(options.single),
            "jobs.api.enqueue (autocommit)": lambda: tracked(options.single),
            "jobs.api.enqueue (in a transaction)": lambda: tracked_in_transaction(options.single),
            f"jobs.api.enqueue_many ({options.jobs})": lambda: many(options.jobs),
            "row only: INSERT + commit": lambda: row_only(options.single),
        }
        if connection.vendor == "postgresql":
            variants["row only, no WAL flush (not durable)"] = lambda: row_only(options.single, durable=False)
        results: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(options.rounds):
            for name, run in variants.items():
                results[name].append(run())
        rate = {name: statistics.median(values) for name, values in results.items()}
        plain_rate = rate["plain Queue.enqueue"]
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        from redis.utils import HIREDIS_AVAILABLE

        hiredis = "on" if HIREDIS_AVAILABLE else "off"
        print(f"\nenqueue, median of {options.rounds} rounds, {engine}, hiredis {hiredis}, load average {load}")
        print(f"{'variant':40} {'jobs/s':>10} {'ms/job':>8} {'vs plain':>9}")
        for name, value in rate.items():
            print(f"{name:40} {value:10.0f} {1000 / value:8.3f} {value / plain_rate:9.2f}")
    finally:
        redis.stop()


def reset() -> None:
    from jobs.connection import get_connection
    get_connection().flushdb()
    truncate_records()


def plain(n: int) -> float:
    from jobs.connection import get_queue

    reset()
    queue = get_queue("default")
    started = time.perf_counter()
    for _ in range(n):
        queue.enqueue("jobs.demo.noop")
    return n / (time.perf_counter() - started)


def tracked(n: int) -> float:
    from jobs import api, demo

    reset()
    started = time.perf_counter()
    for _ in range(n):
        api.enqueue(demo.noop)
    return n / (time.perf_counter() - started)


def tracked_in_transaction(n: int) -> float:
    from django.db import transaction

    from jobs import api, demo

    reset()
    started = time.perf_counter()
    with transaction.atomic():
        for _ in range(n):
            api.enqueue(demo.noop)
    return n / (time.perf_counter() - started)


def many(n: int) -> float:
    from django.db import transaction

    from jobs import api, demo

    reset()
    started = time.perf_counter()
    with transaction.atomic():
        api.enqueue_many([api.Call(demo.noop) for _ in range(n)])
    return n / (time.perf_counter() - started)


def row_only(n: int, durable: bool = True) -> float:
    from django.db import connection

    from jobs import api, demo
    from jobs.copy import insert_one

    reset()
    if not durable:  # what the WAL flush costs; jobs.api never does this to a caller's commit
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
    started = time.perf_counter()
    for _ in range(n):
        insert_one(api.build_record(demo.noop))
    rate = n / (time.perf_counter() - started)
    if not durable:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")
    return rate


if __name__ == "__main__":
    main()
