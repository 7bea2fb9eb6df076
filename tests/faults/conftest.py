"""Fixtures for the fault suite: private PostgreSQL and Redis for the session, one Rig per test.

See tests/faults/rig.py for why the scenarios run Django in subprocesses against the
private servers instead of through this process's test database.
"""

from __future__ import annotations

import pytest

from .rig import Rig, Servers, why_no_postgres


@pytest.fixture(scope="session")
def fault_servers(request):
    """Start the private servers once; skip the suite where it cannot or should not run."""
    from django.conf import settings

    reason = why_no_postgres()
    if reason:
        pytest.skip(f"fault suite: {reason}")
    on_sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    if on_sqlite and "faults" not in (request.config.option.markexpr or ""):
        # A plain `make test` on SQLite stays quick; select the suite to run it anyway,
        # it brings its own PostgreSQL.
        pytest.skip("fault suite: not on a real database (set DATABASE_URL=postgres://… or select it with -m faults)")
    servers = Servers()
    yield servers
    servers.destroy()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def rig(request, fault_servers, tmp_path):
    """Empty tables and Redis (both private), a fresh execution log; every process stopped at
    teardown, and a failed test's worker logs printed (their tail), to say why."""
    rig = Rig(fault_servers, tmp_path)
    rig.db.execute("TRUNCATE jobs_taskattempt, jobs_backgroundtaskrecord, jobs_auditentry, jobs_queuesample")
    from redis import Redis

    Redis.from_url(fault_servers.redis.url).flushall()  # our own server, never the shared one
    yield rig
    rig.stop_all()
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print("--- worker logs (tail) ---\n" + rig.worker_log()[-6000:])
