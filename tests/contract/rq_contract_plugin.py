"""pytest plugin: RQ's own test suite, run with jobdeck's worker classes in place of RQ's.

Loaded by .ci/rq-contract with ``-p rq_contract_plugin``. At import (before RQ's test
modules are collected, so their ``from rq import Worker`` already sees ours) it:
configures Django on a throw-away SQLite database and migrates it, so the workers' row
writes have tables to go to; then swaps ``rq.Worker``/``rq.worker.Worker`` and
``rq.SimpleWorker``/``rq.worker.SimpleWorker`` (the names RQ's tests and its CLI's
default ``rq.worker.Worker`` resolve) for jobdeck's. RQ's tests enqueue jobs that have no
row: the worker must run them exactly as stock RQ does.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


_VAR: list[str] = []


def _configure_django() -> None:
    var = tempfile.mkdtemp(prefix="jobdeck-rq-contract-db-")
    _VAR.append(var)
    os.environ["JOBDECK_VAR_DIR"] = var
    os.environ.pop("DATABASE_URL", None)  # SQLite in `var`: the run owns its database
    os.environ["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    # jobdeck's own code after RQ's tests dir: RQ's `tests` package must win that name.
    sys.path.append(str(REPO))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def _swap_worker_classes() -> None:
    import rq
    import rq.worker

    from jobs import worker as jobdeck

    for module in (rq, rq.worker):
        module.Worker = jobdeck.Worker
        module.SimpleWorker = jobdeck.SimpleWorker


if os.environ.get("RQ_CONTRACT_WORKERS", "jobdeck") == "jobdeck":
    _configure_django()
    _swap_worker_classes()
    import rq

    print(f"rq-contract: rq.Worker is {rq.Worker.__module__}.{rq.Worker.__qualname__}, "
          f"rq.SimpleWorker is {rq.SimpleWorker.__module__}.{rq.SimpleWorker.__qualname__}", flush=True)


def pytest_sessionfinish(session, exitstatus):
    # A failed worker-pool test leaves its pool's worker processes running (with either
    # class); pytest would wait for them for ever at exit.
    import multiprocessing

    for child in multiprocessing.active_children():
        child.kill()


def pytest_unconfigure(config):
    for var in _VAR:
        shutil.rmtree(var, ignore_errors=True)
