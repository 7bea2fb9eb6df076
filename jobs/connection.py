"""Redis connections and RQ queues for the engine, from django-rq's RQ_QUEUES."""

from __future__ import annotations

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


def queue_names() -> list[str]:
    """The configured queues, in settings order."""
    return list(settings.RQ_QUEUES)


def get_connection(queue_name: str = "default") -> Redis:
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
