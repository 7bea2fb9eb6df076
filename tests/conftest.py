"""Shared fixtures: real Redis, real database, real workers.

Redis comes from REDIS_URL; without it the session starts a private redis-server on a
free port. The database comes from DATABASE_URL (PostgreSQL in CI), else SQLite in a
file, so worker subprocesses see the same test database as the test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from jobs.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
_private_redis: RedisServer | None = None


def pytest_configure(config):
    global _private_redis
    if not os.environ.get("REDIS_URL"):
        _private_redis = RedisServer().start()
        os.environ["REDIS_URL"] = _private_redis.url
    use_redis(os.environ["REDIS_URL"])


def pytest_unconfigure(config):
    if _private_redis is not None:
        _private_redis.stop()


def use_redis(url: str) -> None:
    """Point every configured queue at `url` (django-rq reads RQ_QUEUES on each call)."""
    from django.conf import settings

    settings.REDIS_URL = url
    for queue in settings.RQ_QUEUES.values():
        queue["URL"] = url


def clear_redis(connection) -> None:
    """Delete RQ's and jobdeck's keys in the test database (not a FLUSHDB of a shared server)."""
    for pattern in ("rq:*", "jobdeck:*"):
        keys = list(connection.scan_iter(pattern, count=1000))
        for start in range(0, len(keys), 500):
            connection.delete(*keys[start:start + 500])


@pytest.fixture
def redis_conn():
    """The test Redis, emptied of RQ keys before and after the test."""
    from jobs.connection import get_connection

    connection = get_connection()
    clear_redis(connection)
    yield connection
    try:
        clear_redis(connection)
    except Exception:  # the test killed its own server: nothing left to clear
        pass


@pytest.fixture
def private_redis(settings):
    """A redis-server of the test's own, which it may flush, stop or kill."""
    server = RedisServer().start()
    # A new dict, so pytest-django's settings fixture restores the shared one afterwards.
    settings.RQ_QUEUES = {name: {**config, "URL": server.url} for name, config in settings.RQ_QUEUES.items()}
    settings.REDIS_URL = server.url
    yield server
    server.stop()


@pytest.fixture
def drain(redis_conn):
    """Run a burst worker in this process until the queues are empty (forking: real horses)."""
    from jobs.connection import get_queue
    from jobs.worker import Worker

    def run(*queue_names: str, worker_class=Worker, with_scheduler: bool = False) -> None:
        queues = [get_queue(name) for name in (queue_names or ("high", "default", "low"))]
        worker = worker_class(queues, connection=queues[0].connection)
        worker.work(burst=True, with_scheduler=with_scheduler, logging_level="WARNING")

    return run


def database_url() -> str:
    """A URL for the *test* database, for subprocesses (workers, reconcile, web)."""
    from django.db import connection

    cfg = connection.settings_dict
    if cfg["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{cfg['NAME']}"
    auth = quote(cfg["USER"] or "")
    if cfg.get("PASSWORD"):
        auth += ":" + quote(cfg["PASSWORD"])
    return f"postgres://{auth}@{cfg['HOST'] or '127.0.0.1'}:{cfg['PORT'] or 5432}/{cfg['NAME']}"


@pytest.fixture
def subprocess_env(settings):
    """Environment for a `manage.py` subprocess sharing this test's database and Redis."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        REDIS_URL=settings.RQ_QUEUES["default"]["URL"],
        DJANGO_SETTINGS_MODULE="dashboard.settings",
        PYTHONUNBUFFERED="1",
        RQ_LOG_LEVEL="INFO",
    )
    return env


class WorkerProcess:
    """`python manage.py rqworker …` as a real subprocess."""

    def __init__(self, env: dict, queues=("high", "default", "low"), extra=(), log_path: Path | None = None):
        self.log_path = log_path
        self.log = open(log_path, "w") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", *queues, *extra],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()

    def session_pids(self) -> list[int]:
        """The worker and every work horse it forked (horses take their own process group,
        so only the session, which the worker leads, finds them all)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.process.pid:  # field 6 of stat: the session id
                pids.append(int(stat.parent.name))
        return pids

    def kill_group(self) -> None:
        """SIGKILL the worker's whole session at once, as when its host is lost."""
        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process.poll() is None:
            self.process.wait()


@pytest.fixture
def start_worker(subprocess_env, redis_conn, tmp_path):
    """Start real `manage.py rqworker` subprocesses; all are killed at teardown."""
    started: list[WorkerProcess] = []

    def start(*queues: str, extra=("--with-scheduler",), env: dict | None = None) -> WorkerProcess:
        worker = WorkerProcess({**subprocess_env, **(env or {})}, queues or ("high", "default", "low"), extra,
                               tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_user("viewer", password="pw", is_staff=True)


# --- real Chromium (Debian's package, never a downloaded browser) --------------------------

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def browser():
    """One Chromium for the whole session: two sync Playwrights cannot share the test thread."""
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous calls.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
