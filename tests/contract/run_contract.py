"""Run RQ's own test suite twice, with stock RQ workers and with jobdeck's, and compare.

Called by .ci/rq-contract inside a private network namespace (``unshare -rn``): RQ's
tests connect to 127.0.0.1:6379 and FLUSH databases 4-16 there, so the only Redis they
may reach is the one started here, on that port, in a namespace of their own.

Usage: run_contract.py RQ_SOURCE_DIR [pytest args...]
Exit 0 when every test that passes with stock RQ passes with jobdeck's classes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# A whole run takes 4-8 minutes on two busy cores; one that hangs must not hang CI.
RUN_TIMEOUT_SECONDS = 1800
RQ_PORT = 6379  # hard-coded in RQ's tests (tests/__init__.py, test_cli.py, test_worker.py)


def _isolated() -> bool:
    """True when nothing but our own loopback is reachable: a fresh network namespace has no
    interface but `lo`, so 6379 there is never the machine's shared server."""
    interfaces = [name for _, name in socket.if_nameindex()]
    return interfaces == ["lo"]


def _loopback_up() -> None:
    """Bring `lo` up: a new network namespace starts with it down (no `ip` binary needed)."""
    import fcntl
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack("16sh", fcntl.ioctl(sock, siocgifflags, struct.pack("16sh", b"lo", 0)))[1]
        if not flags & iff_up:
            fcntl.ioctl(sock, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def _passed(junit: Path) -> set[str]:
    """pytest node ids of the tests that passed, from a junit (xunit1) report."""
    passed = set()
    for case in ET.parse(junit).iter("testcase"):
        if not any(child.tag in ("failure", "error", "skipped") for child in case):
            file = case.get("file")
            module = file.removesuffix(".py").replace("/", ".")
            classes = case.get("classname").removeprefix(module).strip(".")
            passed.add("::".join(part for part in (file, *classes.split("."), case.get("name")) if part))
    return passed


def _run(source: Path, workers: str, extra: list[str], label: str = "") -> set[str]:
    junit = source / f"junit-{workers}{label}.xml"
    # The venv's bin first: RQ's tests run its `rq` and `rqworker` scripts by name.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "RQ_CONTRACT_WORKERS": workers, "PYTHONPATH": str(HERE), "PATH": path}
    where = [] if any(not arg.startswith("-") for arg in extra) else ["tests"]
    command = [sys.executable, "-m", "pytest", *where, "-q", "-p", "no:cacheprovider", "-p", "no:django",
               "-p", "rq_contract_plugin", f"--junitxml={junit}", "-o", "junit_family=xunit1", *extra]
    print(f"== RQ's suite with {workers} workers{label} ==", flush=True)
    try:
        completed = subprocess.run(command, cwd=source, env=env, timeout=RUN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        sys.exit(f"rq-contract: the {workers} run took more than {RUN_TIMEOUT_SECONDS} s")
    if not junit.exists():
        sys.exit(f"rq-contract: the {workers} run left no report (exit {completed.returncode})")
    return _passed(junit)


def main() -> int:
    source = Path(sys.argv[1]).resolve()
    extra = sys.argv[2:]
    if not _isolated():
        print("rq-contract: refusing to run: RQ's tests flush Redis at 127.0.0.1:6379; run me through "
              ".ci/rq-contract, inside a private network namespace", file=sys.stderr)
        return 2
    _loopback_up()
    sys.path.insert(0, str(REPO))
    from jobs.redis_server import RedisServer

    only = os.environ.get("RQ_CONTRACT_ONLY")  # "jobdeck" or "stock": one run, no comparison (debugging)
    server = RedisServer(port=RQ_PORT).start()
    try:
        stock = _run(source, "stock", extra) if only != "jobdeck" else set()
        ours = _run(source, "jobdeck", extra) if only != "stock" else set()
        # RQ's suite holds a few timing-bound tests (two workers racing over 0.5 s sleeps, a
        # shutdown within 0.75 s): on a loaded machine they fail now and then with either
        # class. One second chance, with jobdeck's workers, for those alone.
        again = sorted(stock - ours) if not only else []
        if again:
            ours |= _run(source, "jobdeck", again + [a for a in extra if a.startswith("-") and a != "-x"],
                         label=" (second run of the tests that failed)")
    finally:
        server.stop()
    if only:
        print(f"rq-contract: {only} workers only: {len(stock or ours)} tests pass (no comparison)")
        return 0
    missing = sorted(stock - ours)
    print(f"rq-contract: stock RQ workers pass {len(stock)} tests; jobdeck's workers pass {len(ours)}"
          + (f" ({len(set(again) & ours)} of them on a second run)" if again else ""))
    for name in missing:
        print(f"rq-contract: passes with stock RQ, not with jobdeck: {name}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
