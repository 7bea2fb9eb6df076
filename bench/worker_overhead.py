"""Worker overhead: plain RQ against tracked jobs, same no-op jobs, same run, under `manage.py rqworker`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobdeck_bench .venv/bin/python bench/worker_overhead.py [--jobs 2000]

Each round enqueues N no-op jobs, then times `manage.py rqworker --burst` draining them, for the
forking Worker and for SimpleWorker, plain (rq's own class, no rows) and tracked (jobs.worker,
rows kept in step). The worker's start-up is measured by a burst run over an empty queue and
subtracted, so the ratio compares per-job cost. Rounds alternate plain and tracked; the median
of the rounds is reported. A private redis-server on a free port is used, never the shared one.

Beside jobs/s it prints the CPU the worker used per job (its own process, its threads and its
work horses; not Redis's or PostgreSQL's), which a busy machine disturbs less than wall time,
the page faults per job (under the forking worker mostly pages copied on write) and the load
average before and after. SimpleWorker runs ten times as many jobs a round (`--simple-jobs`):
it is about five times faster, and a round must stay long beside the fixed cost of its end
(the last rows' write).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

from records import truncate_records  # noqa: E402  (bench/records.py, beside this script)

WORKERS = {
    "fork": ("rq.Worker", "jobs.worker.Worker"),
    "simple": ("rq.SimpleWorker", "jobs.worker.SimpleWorker"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per round of the forking worker")
    parser.add_argument("--simple-jobs", type=int, help="jobs per round of SimpleWorker (default: 10 x --jobs; it is "
                        "about five times faster, and a round must be long beside the fixed cost of its end)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default=",".join(WORKERS), help="comma-separated: fork,simple")
    options = parser.parse_args()

    from jobs.redis_server import RedisServer

    redis = RedisServer(binary=shutil.which("redis-server")).start()  # a full path: it is exec'd
    os.environ["REDIS_URL"] = redis.url
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.RQ_QUEUES = {n: {**c, "URL": redis.url} for n, c in settings.RQ_QUEUES.items()}
    call_command("migrate", verbosity=0)
    load_before = os.getloadavg()
    try:
        rows = []
        for kind in options.workers.split(","):
            plain_class, tracked_class = WORKERS[kind]
            plain, tracked = [], []
            jobs = options.jobs if kind == "fork" else options.simple_jobs or 10 * options.jobs
            for _ in range(options.rounds):
                plain.append(run_round(jobs, plain_class, tracked=False))
                tracked.append(run_round(jobs, tracked_class, tracked=True))
            rows.append((kind, jobs, *_medians(plain), *_medians(tracked)))
        print(f"\nworker overhead, no-op jobs, median of {options.rounds} rounds, "
              f"{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, load average "
              f"{_load(load_before)} before, {_load(os.getloadavg())} after")
        print(f"{'worker':8} {'jobs':>6} {'plain jobs/s':>13} {'tracked jobs/s':>15} {'tracked/plain':>14} "
              f"{'plain CPU ms/job':>17} {'tracked CPU ms/job':>19} {'plain faults/job':>17} {'tracked faults/job':>19}")
        for kind, jobs, p, p_cpu, p_faults, t, t_cpu, t_faults in rows:
            print(f"{kind:8} {jobs:6} {p:13.1f} {t:15.1f} {t / p:14.2f} {p_cpu:17.2f} {t_cpu:19.2f} {p_faults:17.0f} "
                  f"{t_faults:19.0f}")
    finally:
        redis.stop()


def _medians(rounds: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(statistics.median(column) for column in zip(*rounds))


def _load(load: tuple[float, float, float]) -> str:
    return " ".join(f"{x:.2f}" for x in load)


def run_round(n: int, worker_class: str, *, tracked: bool) -> tuple[float, float, float]:
    """Jobs per second, worker CPU ms per job and page faults per job, for one drain of n no-op
    jobs, start-up excluded."""
    from jobs import api, demo
    from jobs.connection import get_queue
    from jobs.models import BackgroundTaskRecord

    queue = get_queue("default")
    queue.connection.flushdb()
    truncate_records()
    startup = drain(worker_class)  # empty queue: start-up and shutdown only
    if tracked:
        api.enqueue_many([api.Call(demo.noop) for _ in range(n)])
    else:
        with queue.connection.pipeline() as pipe:
            for _ in range(n):
                queue.enqueue_job(queue.create_job("jobs.demo.noop"), pipeline=pipe)
            pipe.execute()
    elapsed, cpu, faults = (a - b for a, b in zip(drain(worker_class), startup))
    assert queue.count == 0, "the queue was not drained"
    if tracked:
        done = BackgroundTaskRecord.objects.filter(status="completed").count()
        assert done == n, f"only {done} of {n} rows completed"
    return n / elapsed, cpu / n * 1000, faults / n


def drain(worker_class: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and page faults (the worker, its threads and its work horses) of
    one burst run. A fault is mostly a page copied on write while a work horse shares it."""
    env = {**os.environ, "RQ_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", "rqworker", "default", "--burst", "--worker-class", worker_class],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            after.ru_minflt - before.ru_minflt)


if __name__ == "__main__":
    main()
