"""jobdeck settings. The only module that reads the environment.

Zero-config defaults suit a newcomer (SQLite under var/, Redis from REDIS_URL or the
private one `make run` starts); production sets DATABASE_URL, REDIS_URL, SECRET_KEY,
DEBUG=0 and ALLOWED_HOSTS.
"""

import ipaddress
import os
from pathlib import Path

import dj_database_url

from dashboard import devredis

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("JOBDECK_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", "insecure-dev-key-change-me" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY must be set when DEBUG is off")
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "dashboard.apps.AdminConfig",  # django.contrib.admin with the dashboard's site (its throttled login)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_rq",
    "csp",
    "jobs",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite by default; DATABASE_URL (postgres://...) in production and CI.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'jobdeck.sqlite3'}",
        conn_max_age=env_int("CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and the clock write concurrently: WAL plus a busy timeout keeps
    # SQLite from answering "database is locked". Tests use a file, so worker
    # subprocesses see the same database.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_jobdeck.sqlite3")}

# Toward PostgreSQL: a server gone silent (packets dropped, not refused) must cost seconds, not
# minutes. Every process connects within JOBS_DB_CONNECT_TIMEOUT_SECONDS and drops a connection
# whose sent data goes unacknowledged for JOBS_DB_TCP_USER_TIMEOUT_MS (keepalives find an idle
# one); a worker's row writer and the clock also stop a statement after JOBS_DB_STATEMENT_TIMEOUT_MS
# (jobs/dbtimeouts.py; a job's own queries keep the server's default). 0 turns each off.
JOBS_DB_CONNECT_TIMEOUT_SECONDS = env_int("JOBS_DB_CONNECT_TIMEOUT_SECONDS", 5)
JOBS_DB_TCP_USER_TIMEOUT_MS = env_int("JOBS_DB_TCP_USER_TIMEOUT_MS", 15000)
JOBS_DB_STATEMENT_TIMEOUT_MS = env_int("JOBS_DB_STATEMENT_TIMEOUT_MS", 30000)
# A row write waiting on the database longer than this is logged, and the overview warns.
JOBS_WRITER_STALL_SECONDS = env_int("JOBS_WRITER_STALL_SECONDS", 10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _network = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
    if JOBS_DB_CONNECT_TIMEOUT_SECONDS > 0:
        _network["connect_timeout"] = JOBS_DB_CONNECT_TIMEOUT_SECONDS
    if JOBS_DB_TCP_USER_TIMEOUT_MS > 0:
        _network["tcp_user_timeout"] = JOBS_DB_TCP_USER_TIMEOUT_MS
    DATABASES["default"]["OPTIONS"] = {**_network, **DATABASES["default"].get("OPTIONS", {})}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# In development gunicorn serves static files straight from the source folders.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Redis and RQ -------------------------------------------------------------
# REDIS_URL, else the private Redis of a `make run` still running in this checkout (so the shell
# and every manage.py command reach the same queues as its web and workers), else the default.
REDIS_URL = os.environ.get("REDIS_URL") or devredis.discover(VAR_DIR) or "redis://127.0.0.1:6379/0"
JOBS_DEFAULT_TIMEOUT = env_int("JOBS_DEFAULT_TIMEOUT", 180)
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": JOBS_DEFAULT_TIMEOUT}
    for name in ("default", "high", "low")
}
RQ = {
    # Plain `manage.py rqworker` runs the tracking worker: nobody has to remember a flag.
    "WORKER_CLASS": os.environ.get("JOBS_WORKER_CLASS", "jobs.worker.Worker"),
    # django_rq.enqueue, @django_rq.job, get_queue(...).enqueue*, Group, depends_on: each job
    # enqueued through RQ itself gets its row as RQ takes it (jobs.adopt).
    "QUEUE_CLASS": "jobs.rq_classes.Queue",
}

# --- jobs (the engine) --------------------------------------------------------
# How often a busy worker refreshes its heartbeat (RQ's job_monitoring_interval).
JOBS_HEARTBEAT_SECONDS = env_int("JOBS_HEARTBEAT_SECONDS", 10)
# A running job whose worker has not beaten for this long is "worker lost".
JOBS_WORKER_LOST_AFTER_SECONDS = env_int("JOBS_WORKER_LOST_AFTER_SECONDS", 30)
# A pending row this old that Redis does not hold is pushed again.
JOBS_PENDING_GRACE_SECONDS = env_int("JOBS_PENDING_GRACE_SECONDS", 10)
# A cancel of a running job that has not landed after this long is sent again.
JOBS_CANCEL_RESEND_SECONDS = env_int("JOBS_CANCEL_RESEND_SECONDS", 10)
# How long RQ keeps finished jobs: long enough for the reconciler to read them.
JOBS_RESULT_TTL = env_int("JOBS_RESULT_TTL", 3600)
# Results larger than this (as JSON) are stored as a truncated preview.
JOBS_RESULT_MAX_BYTES = env_int("JOBS_RESULT_MAX_BYTES", 65536)
# Arguments larger than this (as JSON) are refused at enqueue.
JOBS_ARGS_MAX_BYTES = env_int("JOBS_ARGS_MAX_BYTES", 1024 * 1024)
# Tracebacks are stored up to this many characters (the tail, where the error is).
JOBS_TRACEBACK_MAX_CHARS = env_int("JOBS_TRACEBACK_MAX_CHARS", 20000)
# On SIGTERM a worker finishes its job, but stops it after this many seconds (keep it
# below your process manager's kill timeout, so no work horse is left orphaned).
JOBS_SHUTDOWN_GRACE_SECONDS = env_int("JOBS_SHUTDOWN_GRACE_SECONDS", 25)
# At-least-once unless set: an interrupted or lost job goes back to its queue (docs/OPERATIONS.md).
JOBS_AT_MOST_ONCE = env_bool("JOBS_AT_MOST_ONCE", False)
JOBS_MAX_INTERRUPTIONS = env_int("JOBS_MAX_INTERRUPTIONS", 3)
# The reconciler's loop interval in the Procfile's clock process.
JOBS_RECONCILE_SECONDS = env_int("JOBS_RECONCILE_SECONDS", 15)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "rq.worker": {"level": os.environ.get("RQ_LOG_LEVEL", "INFO")},
    },
}

# --- dashboard ---
# How often polled regions refresh (htmx "every Ns"); one request in flight per region.
DASHBOARD_POLL_SECONDS = env_int("DASHBOARD_POLL_SECONDS", 3)
# The charts change once a minute (the clock's samples): they poll less often.
DASHBOARD_CHART_POLL_SECONDS = env_int("DASHBOARD_CHART_POLL_SECONDS", 60)
# Rows per page of the job list and the audit log (keyset pagination).
DASHBOARD_PAGE_SIZE = env_int("DASHBOARD_PAGE_SIZE", 50)
# Bulk actions run in chunks of this many rows, at most DASHBOARD_BULK_MAX rows per request:
# each row is its own transaction and Redis round trip, so the cap bounds the request time.
DASHBOARD_BULK_CHUNK = env_int("DASHBOARD_BULK_CHUNK", 100)
DASHBOARD_BULK_MAX = env_int("DASHBOARD_BULK_MAX", 1000)
# How long a bulk confirmation stays valid.
DASHBOARD_BULK_TOKEN_SECONDS = env_int("DASHBOARD_BULK_TOKEN_SECONDS", 900)
# A worker whose heartbeat is older than this is flagged stale.
DASHBOARD_STALE_HEARTBEAT_SECONDS = env_int("DASHBOARD_STALE_HEARTBEAT_SECONDS", JOBS_WORKER_LOST_AFTER_SECONDS)
# A scheduled job this late is flagged overdue.
DASHBOARD_OVERDUE_SECONDS = env_int("DASHBOARD_OVERDUE_SECONDS", 60)
# Keyword arguments whose names contain one of these are masked on the job page.
DASHBOARD_SENSITIVE_KWARGS = ("password", "secret", "token", "api_key", "apikey", "authorization", "credential")

# --- ecosystem ---
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients):
# Django then sees https requests as secure, and cookies are sent over https only.
# gunicorn.conf.py reads this too: gunicorn believes the header exactly when Django does.
TRUST_X_FORWARDED_PROTO = env_bool("TRUST_X_FORWARDED_PROTO", False)
if TRUST_X_FORWARDED_PROTO:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
# The proxies in front of gunicorn, as addresses or networks ("127.0.0.1", "10.0.0.0/8"): a request
# from one of them is from the nearest address of X-Forwarded-For that is not one of them (the
# login throttle's client). Empty: the client is the peer itself, REMOTE_ADDR.
TRUSTED_PROXIES = [p.strip() for p in os.environ.get("TRUSTED_PROXIES", "").split(",") if p.strip()]
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError:
        raise RuntimeError(f"TRUSTED_PROXIES: {_proxy!r} is not an address or network") from None
# Redis Sentinel instead of REDIS_URL: REDIS_SENTINELS="10.0.0.1:26379,10.0.0.2:26379",
# REDIS_MASTER_NAME, optional REDIS_PASSWORD and REDIS_DB (django-rq's SENTINELS/MASTER_NAME keys).
if os.environ.get("REDIS_SENTINELS"):
    RQ_QUEUES = {
        name: {
            "SENTINELS": [(host, int(port)) for host, port in
                          (s.strip().rsplit(":", 1) for s in os.environ["REDIS_SENTINELS"].split(",") if s.strip())],
            "MASTER_NAME": os.environ.get("REDIS_MASTER_NAME", "mymaster"),
            "DB": env_int("REDIS_DB", 0),
            "PASSWORD": os.environ.get("REDIS_PASSWORD") or None,
            "DEFAULT_TIMEOUT": JOBS_DEFAULT_TIMEOUT,
        }
        for name in RQ_QUEUES
    }
# Django Tasks (the django-tasks backport on 5.2): @task functions run on RQ as tracked jobs.
INSTALLED_APPS += ["django_tasks"]
TASKS = {"default": {"BACKEND": "jobs.tasks_backend.RQBackend", "QUEUES": list(RQ_QUEUES)}}
# Bearer token that opens /metrics to Prometheus; empty: only sessions with the jobs' view permission.
JOBS_METRICS_TOKEN = os.environ.get("JOBS_METRICS_TOKEN", "")
# The clock deletes finished jobs older than this many days (jobs_prune); 0 or less: never.
JOBS_RETENTION_DAYS = env_int("JOBS_RETENTION_DAYS", 14)
# Periodic jobs the clock enqueues, each run a tracked row (README "Periodic jobs"). `make run`
# (JOBS_DEMO_PERIODIC=1) declares two demo entries so the Crons page has something to show.
JOBS_PERIODIC: dict = {}
if env_bool("JOBS_DEMO_PERIODIC", False):
    JOBS_PERIODIC = {
        "demo-heartbeat": {"func": "jobs.demo.add", "every": 30, "args": [1, 1]},
        "demo-poll-feed": {"func": "jobs.demo.flaky", "cron": "* * * * *", "args": [0.3], "queue": "low"},
        "demo-nightly-report": {"func": "jobs.demo.long_report", "cron": "0 2 * * *", "timezone": "Europe/Paris",
                                "queue": "low", "kwargs": {"steps": 5, "step_seconds": 0.2}},
    }

# --- security ---
# Nothing may frame the dashboard (its buttons act): X-Frame-Options plus CSP frame-ancestors.
X_FRAME_OPTIONS = "DENY"
# No inline script or style anywhere: templates use classes, htmx's indicator style is off
# (htmx-config meta in base.html), and the only scripts are our static files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
    },
}
# django-rq registers RQ's own dashboard in the admin: RQ's copy of every job (keyword arguments
# in clear) and buttons that delete, requeue or empty queues behind the record's back, unaudited,
# for any staff user. jobdeck's dashboard is the one view of the jobs: it is not served.
RQ_SHOW_ADMIN_LINK = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    # Production is served over https (directly or behind TRUST_X_FORWARDED_PROTO); each can be
    # turned off by env for a deployment that terminates TLS in a way Django cannot see.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probes speak plain http inside the network
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Joining the browsers' preload list is a decision for the domain's owner, not a default.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
# Login throttling (dashboard.throttle) counts failures in the cache, so the cache must be shared
# by every gunicorn worker: the database cache (its table is created by dashboard's migration,
# and by the test runner) needs nothing beyond the database the site already has.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "jobdeck_cache",
    },
}
# A username+address pair is refused for the rest of the window after this many failures in it
# (the client's address: see TRUSTED_PROXIES).
DASHBOARD_LOGIN_MAX_FAILURES = env_int("DASHBOARD_LOGIN_MAX_FAILURES", 5)
DASHBOARD_LOGIN_WINDOW_SECONDS = env_int("DASHBOARD_LOGIN_WINDOW_SECONDS", 15 * 60)
