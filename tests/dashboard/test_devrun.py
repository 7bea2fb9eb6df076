"""`make run` (manage.py devrun): every manage.py command finds its private Redis, and a taken
port stops it before anything starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard import devredis
from jobs.redis_server import RedisServer, free_port
from tests.conftest import ROOT, wait_for

SHOW_URL = "from django.conf import settings as s; print(s.RQ_QUEUES['default']['URL'])"
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def _env(var_dir: Path, **extra) -> dict:
    """The environment of a newcomer's terminal: no REDIS_URL, a SQLite database under var_dir."""
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return {**base, "JOBDECK_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1", **extra}


def _shell_redis_url(var_dir: Path) -> str:
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", SHOW_URL], cwd=ROOT, env=_env(var_dir),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def private_server():
    server = RedisServer().start()
    yield server
    server.stop()


def test_the_shell_finds_the_published_redis_and_not_a_stale_one(tmp_path, private_server):
    devredis.publish(tmp_path, private_server.url, private_server.process.pid)
    assert devredis.discover(tmp_path) == private_server.url
    assert _shell_redis_url(tmp_path) == private_server.url
    private_server.stop()  # the run was killed: its file stays behind, its server is gone
    assert (tmp_path / devredis.FILE_NAME).exists()
    assert devredis.discover(tmp_path) is None
    assert _shell_redis_url(tmp_path) == DEFAULT_URL


def test_a_stale_file_is_not_trusted(tmp_path, private_server):
    path = tmp_path / devredis.FILE_NAME
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({"url": private_server.url, "pid": dead.pid}))  # the pid is gone
    assert devredis.discover(tmp_path) is None
    path.write_text(json.dumps({"url": f"redis://127.0.0.1:{free_port()}/0", "pid": os.getpid()}))  # nobody listens
    assert devredis.discover(tmp_path) is None
    for garbage in ("", "{", "[]", '{"url": 5, "pid": "x"}', '{"url": "nonsense", "pid": 1}'):
        path.write_text(garbage)
        assert devredis.discover(tmp_path) is None, garbage


def test_withdraw_leaves_another_runs_file(tmp_path):
    devredis.publish(tmp_path, "redis://127.0.0.1:1111/0", 1)
    devredis.withdraw(tmp_path, "redis://127.0.0.1:2222/0")
    assert (tmp_path / devredis.FILE_NAME).exists()
    devredis.withdraw(tmp_path, "redis://127.0.0.1:1111/0")
    assert not (tmp_path / devredis.FILE_NAME).exists()


def test_a_taken_port_stops_make_run_before_it_starts_anything(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "manage.py", "devrun"], cwd=ROOT, capture_output=True, text=True,
                              env=_env(tmp_path, PORT=str(port)), timeout=120)
    assert done.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert f"PORT={port + 1} make run" in done.stderr
    assert "private Redis" not in done.stdout and "demo:" not in done.stdout and "open http" not in done.stdout
    assert not (tmp_path / "jobdeck.sqlite3").exists()  # not even migrated
    assert not (tmp_path / devredis.FILE_NAME).exists()


@pytest.mark.slow
def test_make_run_publishes_its_redis_while_it_runs(tmp_path):
    port = free_port()
    env = _env(tmp_path, PORT=str(port), PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    run = subprocess.Popen([sys.executable, "manage.py", "devrun", "--no-demo"], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: devredis.discover(tmp_path), timeout=120, message="devrun to publish its Redis")
        url = devredis.discover(tmp_path)
        assert url != DEFAULT_URL
        assert _shell_redis_url(tmp_path) == url  # `python manage.py shell` talks to make run's Redis
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C in the terminal
        output = run.communicate(timeout=60)[0]
    assert f"private Redis on {url}" in output
    assert not (tmp_path / devredis.FILE_NAME).exists()
    assert _shell_redis_url(tmp_path) == DEFAULT_URL


def test_a_port_that_is_no_number_is_refused_cleanly(tmp_path):
    done = subprocess.run([sys.executable, "manage.py", "devrun"], cwd=ROOT, capture_output=True, text=True,
                          env=_env(tmp_path, PORT="80a"), timeout=120)
    assert done.returncode == 2
    assert "argument --port: invalid int value: '80a'" in done.stderr and "Traceback" not in done.stderr
