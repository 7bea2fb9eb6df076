"""The fault suite's private servers and the handles a scenario drives them with.

Design: the suite never points the test process's own Django connection at the fault
database. pytest-django configures DATABASES before any conftest runs, and in CI the
session already runs on the machine's PostgreSQL (or SQLite locally). Instead the suite
starts a private PostgreSQL and a private Redis, migrates a database on them with
`manage.py migrate`, and lets subprocesses do all Django work against them: real
`manage.py rqworker` workers, `manage.py jobs_reconcile --loop`, and short `driver.py`
calls for enqueue, retry and cancel. The test process only reads the rows (psycopg) and
breaks the servers. So the scenarios run the same code as production, on a database the
test may stop, whatever database the rest of the session uses.
"""

from __future__ import annotations

import collections
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs.redis_server import RedisServer, free_port
from tests.conftest import ROOT, WorkerProcess

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)

# Fast liveness for the scenarios (production defaults: 10 s, 30 s, 15 s, 10 s).
FAST_LIVENESS = {
    "JOBS_HEARTBEAT_SECONDS": "2",
    "JOBS_WORKER_LOST_AFTER_SECONDS": "8",
    "JOBS_PENDING_GRACE_SECONDS": "4",
    "JOBS_CANCEL_RESEND_SECONDS": "3",
}
RECONCILE_EVERY = 3


def pg_binary(name: str) -> str | None:
    for directory in PG_BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    return shutil.which(name)


def why_no_postgres() -> str | None:
    """None if a private PostgreSQL can be started here, else the reason it cannot."""
    if not (pg_binary("initdb") and pg_binary("pg_ctl")):
        return "initdb/pg_ctl not found (install postgresql)"
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            return "running as root without runuser to start PostgreSQL as user postgres"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


class PostgresServer:
    """A throw-away cluster on a free loopback port; its socket and data live in a temp dir."""

    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="jobdeck-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_root = os.geteuid() == 0
        if self.as_root:  # initdb refuses root: the cluster belongs to user postgres
            entry = pwd.getpwnam("postgres")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [*(["runuser", "-u", "postgres", "--"] if self.as_root else []), *args]
        subprocess.run(command, check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> "PostgresServer":
        self._run(pg_binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")
        return self

    def start(self) -> None:
        # fsync off: the suite stops the server cleanly (fast shutdown), it never crashes the host.
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c max_connections=200")
        self._run(pg_binary("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "start")

    def stop(self) -> None:
        self._run(pg_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Servers:
    """The session's private PostgreSQL (database `faults`, migrated) and Redis."""

    def __init__(self):
        self.pg = PostgresServer().init()
        self.pg.start()
        self.redis = RedisServer().start()
        self.var_dir = Path(tempfile.mkdtemp(prefix="jobdeck-faults-var-"))
        import psycopg

        with psycopg.connect(self.pg.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE faults")
        self.database_url = self.pg.url("faults")
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env(), check=True,
                       timeout=120)

    def env(self, **extra: str) -> dict:
        env = dict(os.environ)
        for name in ("REDIS_SENTINELS", "PYTEST_CURRENT_TEST"):
            env.pop(name, None)
        env.update(
            DATABASE_URL=self.database_url, REDIS_URL=self.redis.url, DJANGO_SETTINGS_MODULE="dashboard.settings",
            JOBDECK_VAR_DIR=str(self.var_dir), PYTHONUNBUFFERED="1", RQ_LOG_LEVEL="WARNING", **FAST_LIVENESS,
        )
        env.update(extra)
        return env

    def stop_redis(self) -> None:
        """Kill Redis (no save: it comes back empty)."""
        self.redis.kill()
        self.redis.stop()

    def start_redis(self) -> None:
        """An empty Redis on the same port."""
        self.redis = RedisServer(port=self.redis.port).start()

    def restart_redis_empty(self) -> float:
        """Kill Redis and start an empty one on the same port; returns the seconds it was down."""
        began = time.monotonic()
        self.stop_redis()
        self.start_redis()
        return time.monotonic() - began

    def destroy(self) -> None:
        self.redis.stop()
        self.pg.destroy()
        shutil.rmtree(self.var_dir, ignore_errors=True)


class Rig:
    """One scenario's handles: workers, the reconcile loop, driver calls, row reads."""

    def __init__(self, servers: Servers, tmp_path: Path):
        self.servers = servers
        self.tmp = tmp_path
        self.execution_log = tmp_path / "executions.log"
        self.execution_log.touch()
        self.workers: list[WorkerProcess] = []
        self.reconcilers: list[subprocess.Popen] = []
        self.restarts = 0
        self._db = None

    # --- environment and processes ------------------------------------------------
    @property
    def env(self) -> dict:
        return self.servers.env(FAULTS_EXECUTION_LOG=str(self.execution_log))

    def start_worker(self, name: str | None = None, extra=()) -> WorkerProcess:
        name = name or f"faults-w{len(self.workers) + 1}"
        worker = WorkerProcess(self.env, ("high", "default", "low"), ("--name", name, *extra),
                               self.tmp / f"{name}.log")
        worker.name = name
        self.workers.append(worker)
        return worker

    def supervise(self) -> int:
        """Restart exited workers, as a process manager would; returns how many were restarted."""
        restarted = 0
        for worker in list(self.workers):
            if worker.process.poll() is not None and not getattr(worker, "replaced", False):
                worker.replaced = True
                self.start_worker()
                restarted += 1
        self.restarts += restarted
        return restarted

    def wait_ready(self, *workers: WorkerProcess, timeout: float = 30) -> None:
        """Wait until each worker has registered in Redis (Django loaded, listening)."""
        from redis import Redis

        connection = Redis.from_url(self.servers.redis.url)
        wait_until(lambda: all(connection.exists(f"rq:worker:{w.name}") for w in workers), timeout=timeout,
                   message="the workers to register")

    def start_reconciler(self, every: float = RECONCILE_EVERY) -> subprocess.Popen:
        log = open(self.tmp / f"reconcile-{len(self.reconcilers)}.log", "w")
        process = subprocess.Popen([sys.executable, "manage.py", "jobs_reconcile", "--loop", str(every)],
                                   cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.reconcilers.append(process)
        return process

    def drive(self, function: str, timeout: float = 120, **kwargs):
        """Run tests/faults/driver.py's `function(**kwargs)` in a Django subprocess; return its JSON result."""
        completed = subprocess.run(
            [sys.executable, "-m", "tests.faults.driver", function, json.dumps(kwargs)],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout,
        )
        if completed.returncode != 0:
            raise AssertionError(f"driver {function} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-5000:]}")
        return json.loads(completed.stdout.strip().splitlines()[-1])

    def stop_all(self) -> None:
        for process in self.reconcilers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for worker in self.workers:
            worker.kill_group()
        if self._db is not None:
            self._db.close()

    # --- reading the fault database ----------------------------------------------
    @property
    def db(self):
        import psycopg
        from psycopg.rows import dict_row

        if self._db is None or self._db.closed or self._db.broken:
            self._db = psycopg.connect(self.servers.database_url, autocommit=True, row_factory=dict_row,
                                       connect_timeout=3)
        return self._db

    def rows(self, sql: str, *params) -> list[dict]:
        import psycopg

        try:
            return self.db.execute(sql, params).fetchall()
        except psycopg.OperationalError:  # the scenario restarted PostgreSQL: connect again, once
            self._db = None
            return self.db.execute(sql, params).fetchall()

    def value(self, sql: str, *params):
        rows = self.rows(sql, *params)
        return None if not rows else next(iter(rows[0].values()))

    def status_counts(self) -> dict[str, int]:
        return {r["status"]: r["n"] for r in self.rows(
            "SELECT status, count(*) AS n FROM jobs_backgroundtaskrecord GROUP BY status")}

    def active_count(self) -> int:
        return self.value("SELECT count(*) FROM jobs_backgroundtaskrecord WHERE status IN ('pending', 'running')")

    def executions(self) -> collections.Counter:
        """How many times each job's function began, from the lines the job functions append."""
        lines = self.execution_log.read_text().splitlines()
        return collections.Counter(line.split()[0] for line in lines if line.strip())

    def over_runs(self) -> list[tuple[str, int, int]]:
        """Jobs whose function ran more times than their row's attempts say: (id, executions, attempts)."""
        ran = self.executions()
        attempts = {str(r["id"]): r["attempts"] for r in self.rows(
            "SELECT id, attempts FROM jobs_backgroundtaskrecord")}
        over = [(job_id, count, attempts.get(job_id, 0)) for job_id, count in ran.items()
                if count > attempts.get(job_id, 0)]
        return sorted(over)

    def worker_log(self) -> str:
        return "\n".join(w.output() for w in self.workers)


def wait_until(predicate, timeout: float, interval: float = 0.25, message="condition"):
    """Poll `predicate` until truthy, tolerating a database that is briefly unreachable.
    `message` may be a function: it is then read at the time-out, to say how things ended."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # noqa: BLE001 - the scenario may have stopped a server on purpose
            last_error, value = exc, None
        if value:
            return value
        time.sleep(interval)
    if callable(message):
        try:
            message = message()
        except Exception as exc:  # noqa: BLE001 - the server the message reads may be down
            message = f"(the message could not be read: {exc})"
    raise AssertionError(f"timed out after {timeout} s waiting for {message}" +
                         (f" (last error: {last_error})" if last_error else ""))
