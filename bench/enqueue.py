"""Enqueue speed: plain RQ `Queue.enqueue`, against `jobs.api.enqueue`, against `enqueue_many`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobdeck_bench .venv/bin/python bench/enqueue.py [--jobs 10000]

Every variant enqueues the same no-op job N times into a private redis-server (never the
shared one), timed with time.perf_counter; rounds alternate variants and the median is kept.
`jobs.api.enqueue` runs in autocommit, as a view or script calling it would: one INSERT,
committed, then the push to Redis after commit.
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

from records import truncate_records  # noqa: E402  (bench/records.py, beside this script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=2000, help="jobs for the one-at-a-time variants")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    from jobs.redis_server import RedisServer

    redis = RedisServer().start()
    os.environ["REDIS_URL"] = redis.url
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.RQ_QUEUES = {n: {**c, "URL": redis.url} for n, c in settings.RQ_QUEUES.items()}
    call_command("migrate", verbosity=0)
    try:
        results: dict[str, list[float]] = {"plain": [], "tracked": [], "many": []}
        for _ in range(options.rounds):
            results["plain"].append(plain(options.single))
            results["tracked"].append(tracked(options.single))
            results["many"].append(many(options.jobs))
        rate = {name: statistics.median(values) for name, values in results.items()}
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        print(f"\nenqueue, median of {options.rounds} rounds, {engine}")
        print(f"{'variant':34} {'jobs/s':>10} {'vs plain':>9}")
        print(f"{'plain Queue.enqueue':34} {rate['plain']:10.0f} {1:9.2f}")
        print(f"{'jobs.api.enqueue (autocommit)':34} {rate['tracked']:10.0f} {rate['tracked'] / rate['plain']:9.2f}")
        print(f"{f'jobs.api.enqueue_many ({options.jobs})':34} {rate['many']:10.0f} {rate['many'] / rate['plain']:9.2f}")
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


def many(n: int) -> float:
    from django.db import transaction

    from jobs import api, demo

    reset()
    started = time.perf_counter()
    with transaction.atomic():
        api.enqueue_many([api.Call(demo.noop) for _ in range(n)])
    return n / (time.perf_counter() - started)



if __name__ == "__main__":
    main()
