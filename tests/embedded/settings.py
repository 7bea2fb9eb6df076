"""A host project that embeds the jobs app: contrib apps, django_rq and jobs, nothing of the site.

No JOBS_* setting is set, so every one the engine reads must have a default (jobs.conf).
The database and Redis come from the environment only so that the test's worker
subprocess shares them.
"""

import os
import tempfile
from pathlib import Path

import dj_database_url

VAR_DIR = Path(os.environ.get("JOBDECK_VAR_DIR", tempfile.gettempdir()))
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = "embedded-test-key"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "jobs",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.embedded.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "static/"

DATABASES = {"default": dj_database_url.config(default=f"sqlite:///{VAR_DIR / 'embedded.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The worker subprocess writes while the test reads: WAL and a busy timeout.
    DATABASES["default"]["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE",
                                       "timeout": 30}
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_embedded.sqlite3")}
else:
    # Never the test database of a jobdeck run going on at the same time.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_embedded"}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {"default": {"URL": REDIS_URL}}
RQ = {"WORKER_CLASS": "jobs.worker.Worker"}
