"""Worker overhead: plain RQ against tracked jobs, same no-op jobs, same run, under `manage.py rqworker`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/jobdeck_bench .venv/bin/python bench/worker_overhead.py [--jobs 2000]

Each round enqueues N no-op jobs, then times `manage.py rqworker --burst` draining them, for the
forking Worker and for SimpleWorker, plain (rq's own class, no rows) and tracked (jobs.worker,
rows kept in step). The worker's start-up is measured by a burst run over an empty queue and
subtracted, so the ratio compares per-job cost. Rounds alternate plain and tracked; the median
of the rounds is reported. A private redis-server on a free port is used, never the shared one.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    from jobs.redis_server import RedisServer

    redis = RedisServer(binary="redis-server" if _which("redis-server") else None).start()
    os.environ["REDIS_URL"] = redis.url
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.RQ_QUEUES = {n: {**c, "URL": redis.url} for n, c in settings.RQ_QUEUES.items()}
    call_command("migrate", verbosity=0)
    try:
        rows = []
        for kind, (plain_class, tracked_class) in WORKERS.items():
            plain, tracked = [], []
            for _ in range(options.rounds):
                plain.append(run_round(options.jobs, plain_class, tracked=False))
                tracked.append(run_round(options.jobs, tracked_class, tracked=True))
            p, t = statistics.median(plain), statistics.median(tracked)
            rows.append((kind, p, t, t / p))
        print(f"\nworker overhead, {options.jobs} no-op jobs, median of {options.rounds} rounds, "
              f"{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
        print(f"{'worker':8} {'plain jobs/s':>13} {'tracked jobs/s':>15} {'tracked/plain':>14}")
        for kind, p, t, ratio in rows:
            print(f"{kind:8} {p:13.1f} {t:15.1f} {ratio:14.2f}")
    finally:
        redis.stop()


def run_round(n: int, worker_class: str, *, tracked: bool) -> float:
    """Jobs per second for one drain of n no-op jobs, start-up excluded."""
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
    elapsed = drain(worker_class) - startup
    assert queue.count == 0, "the queue was not drained"
    if tracked:
        done = BackgroundTaskRecord.objects.filter(status="completed").count()
        assert done == n, f"only {done} of {n} rows completed"
    return n / elapsed


def drain(worker_class: str) -> float:
    env = {**os.environ, "RQ_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", "rqworker", "default", "--burst", "--worker-class", worker_class],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def _which(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None



if __name__ == "__main__":
    main()
