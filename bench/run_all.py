"""Every benchmark in order, each in its own process, then every table again: `make bench`.

    .venv-bench/bin/python bench/run_all.py [--quick]

Sizes are modest so the whole run stays under about 15 minutes on 2 cores; `--quick`
shrinks them further for a smoke run (its figures are not the ones to quote). Every
database is the bench's own (jobdeck_perf*) on the PostgreSQL at BENCH_PG
(default postgres://postgres@127.0.0.1:5432); every Redis is a private redis-server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from common import ROOT, ensure_database, machine

HERE = ROOT / "bench"


def steps(quick: bool) -> list[tuple[str, list[str], dict]]:
    small = {"DATABASE_URL": ensure_database("jobdeck_perf_small")}  # these two delete every record
    big = ["--database", "jobdeck_perf_quick" if quick else "jobdeck_perf"]  # --quick leaves the million alone
    return [
        ("seed", ["seed.py", "--records", "100000" if quick else "1000000", *big], {}),
        ("pages", ["pages.py", "--samples", "5" if quick else "30", *big]
         + (["--min-records", "100000"] if quick else []), {}),
        ("load", ["load.py", "--seconds", "10" if quick else "60", "--workers", "2" if quick else "2,4", *big], {}),
        ("prune", ["prune.py", "--rows", "30000" if quick else "300000"], {}),
        ("reference", ["reference.py", "--sizes", "5000" if quick else "5000,50000",
                       "--samples", "5" if quick else "20"], {}),
        # Five rounds of 600 jobs (SimpleWorker: 6,000): with three of 300, this VM moved the ratios by ±0.1.
        ("worker overhead", ["worker_overhead.py", "--jobs", "100" if quick else "600", "--rounds", "1" if quick
                             else "5"], small),
        ("enqueue", ["enqueue.py", "--jobs", "1000" if quick else "5000", "--single", "200" if quick else "1000",
                     "--rounds", "1" if quick else "3"], small),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", help="comma-separated step names")
    options = parser.parse_args()
    only = set(options.only.split(",")) if options.only else None
    header = f"jobdeck benchmarks: {' '.join([sys.executable, *sys.argv])}\nmachine: {machine()}\n"
    print(header, flush=True)
    outputs, failed = [], []
    for name, args, env in steps(options.quick):
        if only and name not in only:
            continue
        print(f"== {name}: {' '.join(args)}", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, env={**os.environ, **env}, timeout=1800)
        print(result.stdout, flush=True)
        print(f"== {name}: {time.perf_counter() - started:.0f} s, exit {result.returncode}\n", flush=True)
        outputs.append((name, args, result.stdout))
        if result.returncode:
            failed.append(name)
    print("\n" + "=" * 80 + "\n" + header)
    for name, args, stdout in outputs:
        start = stdout.find("###")
        print(f"## {name} (bench/{' '.join(args)})\n")
        print(stdout[start:] if start >= 0 else stdout.strip()[-3000:], "\n")
    print(f"machine at the end: {machine()}")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
