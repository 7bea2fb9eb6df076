"""`make run`: the whole thing on a fresh machine, stopped cleanly with Ctrl-C."""

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from dashboard.demo import create_demo_users, enqueue_demo_jobs
from jobs.redis_server import RedisServer


class Command(BaseCommand):
    help = "Start a private Redis (unless REDIS_URL is set), migrate, add demo data, then run the Procfile."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
        parser.add_argument("--no-demo", action="store_true", help="skip the demo jobs")

    def handle(self, *args, port, no_demo, **options):
        redis = None
        if not os.environ.get("REDIS_URL"):
            redis = RedisServer(binary=None).start()
            os.environ["REDIS_URL"] = redis.url
            settings.RQ_QUEUES = {n: {**c, "URL": redis.url} for n, c in settings.RQ_QUEUES.items()}
            self.stdout.write(f"private Redis on {redis.url} (set REDIS_URL to use your own)")
        try:
            call_command("migrate", interactive=False, verbosity=0)
            for username, password, role in create_demo_users():
                self.stdout.write(f"login: {username} / {password}  ({role})")
            if not no_demo:
                self.stdout.write(f"demo: enqueued {len(enqueue_demo_jobs())} jobs")
                # The web and the clock read it from their settings: three demo periodic entries.
                os.environ.setdefault("JOBS_DEMO_PERIODIC", "1")
            self.stdout.write(self.style.SUCCESS(f"open http://127.0.0.1:{port}/  (Ctrl-C stops everything)"))
            self.run_procfile(port)
        finally:
            if redis is not None:
                redis.stop()

    def run_procfile(self, port: int) -> None:
        become_subreaper()
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "PYTHONUNBUFFERED": "1"}
        # honcho SIGKILLs what has not exited 5 s after its SIGTERM: stop running jobs before that.
        env.setdefault("JOBS_SHUTDOWN_GRACE_SECONDS", "3")
        # Two workers, so the demo's long job does not hold up the rest of the queue.
        honcho = subprocess.Popen([str(Path(bin_dir) / "honcho"), "start", "-f", "Procfile", "-p", str(port),
                                   "-c", "worker=2"],
                                  cwd=settings.BASE_DIR, env=env)
        # Ctrl-C reaches honcho too (same process group); honcho stops web, worker and clock
        # (the worker's second signal kills any running work horse). A plain SIGTERM to us is forwarded.
        signal.signal(signal.SIGTERM, lambda *_: honcho.terminate())
        deadline = None
        while honcho.poll() is None:
            try:
                honcho.wait(timeout=1)
            except KeyboardInterrupt:
                deadline = deadline or time.monotonic() + 15
            except subprocess.TimeoutExpired:
                if deadline and time.monotonic() > deadline:
                    stop_orphans(keep={honcho.pid})  # something holds honcho's pipes open
                    honcho.kill()
        stop_orphans()


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Adopt orphaned descendants: a work horse outlives its SIGKILLed worker (it runs in its
    own process group), and Ctrl-C must leave no process behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: orphans are adopted by init instead


def stop_orphans(grace: float = 3.0, keep: set[int] = frozenset()) -> None:
    """SIGTERM, then SIGKILL, every child still left (but those in `keep`), and reap them."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        children = [pid for pid in _children() if pid not in keep]
        for pid in children:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while set(_children()) - keep and time.monotonic() < deadline:
            _reap()
            time.sleep(0.1)
    _reap()


def _children() -> list[int]:
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
