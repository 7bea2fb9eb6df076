"""Demo job functions for `make run`, the tests and the benchmarks."""

from __future__ import annotations

import os
import random
import signal
import time

from .worker import set_progress


def add(a: int, b: int) -> int:
    return a + b


def noop() -> None:
    return None


def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def fail(message: str = "boom") -> None:
    raise ValueError(message)


def flaky(failure_rate: float = 0.5) -> str:
    if random.random() < failure_rate:
        raise ConnectionError("upstream service did not answer (demo flake)")
    return "ok"


def long_report(steps: int = 30, step_seconds: float = 1.0) -> dict:
    """Runs for steps × step_seconds, reporting progress as it goes."""
    for step in range(steps):
        set_progress(step / steps, f"step {step + 1} of {steps}")
        time.sleep(step_seconds)
    return {"steps": steps}


def fail_until(marker_path: str, failures: int) -> str:
    """Fails `failures` times (counted in a file), then succeeds: for retry tests."""
    count = int(open(marker_path).read()) if os.path.exists(marker_path) else 0
    with open(marker_path, "w") as handle:
        handle.write(str(count + 1))
    if count < failures:
        raise RuntimeError(f"attempt {count + 1} fails on purpose")
    return f"succeeded after {count} failures"


def kill_self() -> None:
    """The work horse SIGKILLs itself, as the OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


def echo(*args, **kwargs) -> dict:
    return {"args": list(args), "kwargs": kwargs}


def awkward_text() -> dict:
    """Returns, and then raises, text no database column can hold as is (NUL, a lone surrogate)."""
    return {"text": "before\x00after \udc80"}


def awkward_failure() -> None:
    raise ValueError("bad byte \x00 here \udc80")
