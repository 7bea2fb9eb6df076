"""Redis connections and RQ queues for the engine, from django-rq's RQ_QUEUES."""

from __future__ import annotations

import logging

import django_rq
import redis
from django.conf import settings
from redis import Redis
from rq import Queue

# What an unreachable Redis raises: callers degrade (stay pending, show a warning) instead of failing.
REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

from .conf import jobs_setting

# django-rq builds a new client (and pool) on every call; the engine keeps one per
# queue configuration. A changed RQ_QUEUES entry (tests, a re-configured site) gets a new one.
_connections: dict[tuple[str, str], Redis] = {}
# Queues that rows still name though RQ_QUEUES no longer has them, already logged by this process.
_unknown_logged: set[str] = set()
logger = logging.getLogger(__name__)


def queue_names() -> list[str]:
    """The configured queues, in settings order."""
    return list(settings.RQ_QUEUES)


def is_configured(queue_name: str) -> bool:
    """Whether RQ_QUEUES still has the queue (rows outlive a queue removed from the settings)."""
    return queue_name in settings.RQ_QUEUES


def get_connection(queue_name: str = "default") -> Redis:
    """The Redis of a queue. A queue no longer configured gets the default queue's: RQ keeps a
    job's keys by job id, so its job can still be read, cancelled, stopped or deleted there."""
    if queue_name not in settings.RQ_QUEUES:
        queue_name = "default" if "default" in settings.RQ_QUEUES else next(iter(settings.RQ_QUEUES))
    key = (queue_name, repr(sorted(settings.RQ_QUEUES[queue_name].items())))
    connection = _connections.get(key)
    if connection is None:
        connection = _connections[key] = django_rq.get_connection(queue_name)
    return connection


def get_queue(queue_name: str) -> Queue:
    """A plain RQ queue (not django-rq's commit-aware one: jobs.api already waits for the commit)."""
    if queue_name not in settings.RQ_QUEUES:
        raise ValueError(f"unknown queue {queue_name!r}; configured: {', '.join(queue_names())}")
    config = settings.RQ_QUEUES[queue_name]
    return Queue(queue_name, connection=get_connection(queue_name),
                 default_timeout=config.get("DEFAULT_TIMEOUT", jobs_setting("JOBS_DEFAULT_TIMEOUT")))


def log_unknown_queue_once(queue_name: str, rows: int) -> bool:
    """Log, once per process, that rows name a queue RQ_QUEUES no longer has; True when it logged."""
    if queue_name in _unknown_logged:
        return False
    _unknown_logged.add(queue_name)
    logger.warning("%d active jobs name queue %r, which is no longer in RQ_QUEUES: they are skipped until it "
                   "is configured again (cancel or delete them otherwise); logged once", rows, queue_name)
    return True
