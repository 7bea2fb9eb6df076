"""How every manage.py command of the checkout finds the private Redis that `make run` started.

devrun publishes the server's URL and pid in var/devrun-redis.json while it runs and withdraws it
when it stops; settings.py reads it when REDIS_URL is unset. A file left behind by a killed run
names a server that is gone: it is used only while that pid lives and the port answers PING.
Nothing here imports Django: settings.py imports it before Django is set up.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

FILE_NAME = "devrun-redis.json"


def publish(var_dir: Path, url: str, pid: int) -> Path:
    """Write where the private Redis listens (atomically: a reader never sees half a file)."""
    path = Path(var_dir) / FILE_NAME
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps({"url": url, "pid": pid}))
    partial.replace(path)
    return path


def withdraw(var_dir: Path, url: str) -> None:
    """Remove the file, unless another run has since published its own Redis there."""
    path = Path(var_dir) / FILE_NAME
    try:
        if json.loads(path.read_text()).get("url") == url:
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def discover(var_dir: Path) -> str | None:
    """The URL of the running private Redis, or None (no file, or its server is gone)."""
    try:
        found = json.loads((Path(var_dir) / FILE_NAME).read_text())
        url, pid = str(found["url"]), int(found["pid"])
        host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None
    return url if _alive(pid) and _answers(host, int(port)) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.settimeout(0.5)
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except (OSError, ValueError):
        return False
