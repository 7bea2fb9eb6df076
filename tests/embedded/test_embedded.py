"""The jobs app inside another Django project: a pytest run of its own under tests.embedded.settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_jobs_app_works_without_the_site():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.embedded.settings", "PYTHONUNBUFFERED": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/embedded/embedded_checks.py", "--ds", "tests.embedded.settings",
         "-q", "-p", "no:randomly"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-3000:]
    assert " passed" in completed.stdout and " failed" not in completed.stdout
