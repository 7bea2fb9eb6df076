"""Load: 50 browsers polling the jobs fragment every 2 s against gunicorn over a million rows.

    .venv-bench/bin/python bench/load.py [--clients 50] [--seconds 60] [--workers 2,4]

For each worker count, starts the Procfile's `web` command (gunicorn, sync workers) on a
free port on 127.0.0.1 against bench/seed.py's database and a private redis-server, logs in
through the login form, then `--clients` threads each request /jobs/ as htmx does
(HX-Request: true, HX-Target: job-table) every `--interval` seconds, for `--seconds` and
at most `--max-requests` each. Latency is client-side (connect to last byte). Traffic goes
to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from common import ROOT, setup_django, summary, table

PASSWORD = "bench-password-not-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--max-requests", type=int, default=40, help="per client")
    parser.add_argument("--workers", default="2,4", help="gunicorn worker counts to compare")
    parser.add_argument("--database", default="jobdeck_perf")
    options = parser.parse_args()

    from jobs.redis_server import RedisServer, free_port

    redis = RedisServer().start()
    os.environ["REDIS_URL"] = redis.url
    try:
        setup_django(options.database)
        from django.contrib.auth import get_user_model

        from jobs.samples import take_samples

        user, _ = get_user_model().objects.get_or_create(
            username="bench", defaults={"is_staff": True, "is_superuser": True})
        user.set_password(PASSWORD)
        user.save()
        take_samples()  # as the clock does once a minute
        rows = []
        for workers in [int(w) for w in options.workers.split(",")]:
            port = free_port()
            server = start_gunicorn(port, workers)
            try:
                cookie = login(port)
                rows.append([workers, *poll(port, cookie, options)])
            finally:
                os.killpg(server.pid, 15)
                server.wait(10)
        table(f"Load: {options.clients} clients polling the jobs fragment every {options.interval:g} s for "
              f"{options.seconds:g} s (gunicorn sync workers, 127.0.0.1)",
              ["gunicorn workers", "requests", "errors", "req/s", "p50 ms", "p95 ms", "max ms"], rows,
              "Target: p95 under 100 ms, 0 errors.")
    finally:
        redis.stop()


def start_gunicorn(port: int, workers: int) -> subprocess.Popen:
    """The Procfile's web line, as honcho would run it, with its access log discarded."""
    line = next(l for l in Path(ROOT, "Procfile").read_text().splitlines() if l.startswith("web:"))
    command = line.split(":", 1)[1].strip().replace("--access-logfile -", "")
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    server = subprocess.Popen(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            status, _, _ = request(port, "GET", "/healthz")
            if status < 500:
                return server
        except OSError:
            time.sleep(0.2)
    os.killpg(server.pid, 15)
    raise RuntimeError("gunicorn did not answer within 30 s")


def request(port: int, method: str, path: str, headers: dict | None = None, body: str | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def _cookies(headers) -> dict:
    found = {}
    for name, value in headers:
        if name.lower() == "set-cookie":
            key, _, rest = value.partition("=")
            found[key] = rest.split(";", 1)[0]
    return found


def login(port: int) -> str:
    """Log in through the form; returns the Cookie header of the session."""
    status, headers, body = request(port, "GET", "/accounts/login/")
    cookies = _cookies(headers)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
    form = urllib.parse.urlencode({"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token})
    status, headers, _ = request(port, "POST", "/accounts/login/", {
        "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
        "Content-Type": "application/x-www-form-urlencoded", "Referer": f"http://127.0.0.1:{port}/accounts/login/"},
        form)
    cookies.update(_cookies(headers))
    if status != 302 or "sessionid" not in cookies:
        raise RuntimeError(f"login failed: HTTP {status}")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def poll(port: int, cookie: str, options) -> list:
    headers = {"Cookie": cookie, "HX-Request": "true", "HX-Target": "job-table", "HX-Current-URL": "/jobs/"}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    started = time.monotonic()
    stop_at = started + options.seconds

    def client(n: int) -> None:
        time.sleep(options.interval * n / options.clients)  # spread the first requests over one interval
        for _ in range(options.max_requests):
            due = time.monotonic() + options.interval
            if due - options.interval >= stop_at:
                return
            began = time.perf_counter()
            try:
                status, _, _ = request(port, "GET", "/jobs/", headers)
                outcome = None if status == 200 else f"HTTP {status}"
            except OSError as exc:
                outcome = type(exc).__name__
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                latencies.append(elapsed)
                if outcome:
                    errors.append(outcome)
            time.sleep(max(0.0, due - time.monotonic()))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(options.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(options.seconds + 60)
    elapsed = time.monotonic() - started
    p50, p95, worst = summary(latencies)
    if errors:
        print("errors:", sorted(set(errors)))
    return [len(latencies), len(errors), len(latencies) / elapsed, p50, p95, worst]


if __name__ == "__main__":
    main()
