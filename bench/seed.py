"""A million rows: time `manage.py jobs_seed --records N` into a fresh database.

    .venv-bench/bin/python bench/seed.py [--records 1000000] [--database jobdeck_perf]

Drops and recreates `--database` (it must be a bench database: its name starts with
jobdeck_perf), migrates it, then runs the command exactly as a user would, in its own
process, and reports its time and rows/s. Ends with VACUUM ANALYZE, as autovacuum would
soon after, so index-only scans in bench/pages.py see a set visibility map.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import ROOT, database_url, setup_django, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--database", default="jobdeck_perf")
    options = parser.parse_args()
    if not options.database.startswith("jobdeck_perf"):
        raise SystemExit("refusing to drop a database whose name does not start with jobdeck_perf")
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{options.database}" WITH (FORCE)')
    setup_django(options.database)  # creates and migrates it

    command = [sys.executable, "manage.py", "jobs_seed", "--records", str(options.records)]
    started = time.perf_counter()
    output = subprocess.run(command, cwd=ROOT, env=os.environ.copy(), check=True, capture_output=True, text=True,
                            timeout=3600).stdout.strip()
    elapsed = time.perf_counter() - started
    print(output, flush=True)

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_backgroundtaskrecord")
        cursor.execute("VACUUM ANALYZE jobs_taskattempt")
        cursor.execute("SELECT (SELECT count(*) FROM jobs_backgroundtaskrecord),"
                       " (SELECT count(*) FROM jobs_taskattempt),"
                       " pg_size_pretty(pg_total_relation_size('jobs_backgroundtaskrecord'))")
        records, attempts, size = cursor.fetchone()
    table(f"Seeding ({' '.join(command[1:])}, fresh database)",
          ["records", "attempts", "seconds (whole command)", "records/s", "table + indexes"],
          [[records, attempts, elapsed, records / elapsed, size]])


if __name__ == "__main__":
    main()
