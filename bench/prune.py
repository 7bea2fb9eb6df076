"""Pruning speed: jobs.prune.prune_records over old finished rows, rows/s and the longest batch.

    .venv-bench/bin/python bench/prune.py [--rows 300000] [--sweep 1000,5000,10000]

Seeds its own database (jobdeck_perf_prune) with `jobs_seed`'s history, 10,000 rows a day:
first a few days per swept batch size, then `--rows` rows to prune with the default batch
size, then 100,000 newer rows that must stay. Each batch's transaction holds its rows'
locks, so the longest transaction is the longest any lock is held: it is timed from the
start of each `transaction.atomic()` in jobs.prune to its commit.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

from common import setup_django, summary, table

DATABASE = "jobdeck_perf_prune"
PER_DAY = 10_000
KEEP = 100_000


class TimedTransactions:
    """Stands in for django.db.transaction inside jobs.prune: times every atomic() block."""

    def __init__(self, real):
        self.real, self.times_ms = real, []

    def atomic(self, *args, **kwargs):
        return _Timed(self.real.atomic(*args, **kwargs), self.times_ms)


class _Timed:
    def __init__(self, inner, sink):
        self.inner, self.sink = inner, sink

    def __enter__(self):
        self.started = time.perf_counter()
        return self.inner.__enter__()

    def __exit__(self, *exc):
        try:
            return self.inner.__exit__(*exc)
        finally:
            self.sink.append((time.perf_counter() - self.started) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000, help="rows pruned with the default batch size")
    parser.add_argument("--sweep", default="250,1000,2000", help="other batch sizes, 25,000 rows each")
    options = parser.parse_args()
    sweep = [int(s) for s in options.sweep.split(",") if s]
    setup_django(DATABASE)

    from django.db import connection, transaction

    from jobs import prune
    from jobs.models import FINAL_STATES, BackgroundTaskRecord, TaskAttempt
    from jobs.seed import seed_records

    per_size = 25_000
    total = per_size * len(sweep) + options.rows + KEEP
    days = total / PER_DAY
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE jobs_backgroundtaskrecord, jobs_taskattempt")
    started = time.perf_counter()
    seed_records(total, days=days, active=0, seed=7)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_backgroundtaskrecord")
        cursor.execute("VACUUM ANALYZE jobs_taskattempt")
    print(f"seeded {total:,} rows over {days:.1f} days in {time.perf_counter() - started:.0f} s", flush=True)

    timed = TimedTransactions(transaction)
    prune.transaction = timed
    rows, age = [], days * 86400
    runs = [(size, per_size) for size in sweep] + [(prune.BATCH_SIZE, options.rows)]
    for size, count in runs:
        age -= count / PER_DAY * 86400
        timed.times_ms.clear()
        attempts_before = TaskAttempt.objects.count()
        started = time.perf_counter()
        deleted = prune.prune_records(timedelta(seconds=age), batch_size=size)
        elapsed = time.perf_counter() - started
        attempts = attempts_before - TaskAttempt.objects.count()
        p50, p95, longest = summary(timed.times_ms)
        label = f"{size:,}" + (" (default)" if size == prune.BATCH_SIZE and count == options.rows else "")
        rows.append([label, deleted, attempts, len(timed.times_ms), deleted / elapsed, p50, p95, longest])
    left = BackgroundTaskRecord.objects.count()
    still_final = BackgroundTaskRecord.objects.filter(status__in=FINAL_STATES).count()
    table("Pruning (jobs.prune.prune_records)",
          ["batch size", "records deleted", "attempts deleted", "batches", "records/s",
           "batch p50 ms", "batch p95 ms", "longest batch ms"], rows,
          f"{left:,} newer rows kept ({still_final:,} finished). Target: at least 50,000 rows/s, "
          "no batch transaction (lock) over 100 ms.")


if __name__ == "__main__":
    main()
