"""Worker controls: quiet a worker (it finishes its job, takes no new one) and stop it.

Part of jobs.api (re-exported there); each is permission-checked and audited like the job actions.
"""

from __future__ import annotations

from rq.command import PUBSUB_CHANNEL_TEMPLATE, send_shutdown_command
from rq.worker import Worker
from rq.worker_registration import REDIS_WORKER_KEYS

from .actions import ACTIONS
from .api import ActionNotAllowed, audit, permit
from .connection import REDIS_ERRORS, get_connection
# The contract with the worker's dequeue loop: a worker whose name is in this set finishes its
# current job and takes no new one. RQ has no "quiet" command of its own.
from .worker import QUIET_KEY


def quiet_workers() -> set[str]:
    """Names of the workers an operator quieted (empty if Redis does not answer: the page says so already)."""
    try:
        return {m.decode() for m in get_connection().smembers(QUIET_KEY)}
    except REDIS_ERRORS:
        return set()


def quiet_worker(name: str, user=None) -> None:
    """Let a worker finish its current job and take no new one, until unquieted."""
    permit(user, "quiet")
    _registered_worker(name)
    get_connection().sadd(QUIET_KEY, name)
    audit(user, ACTIONS["quiet"].audit, worker=name)


def unquiet_worker(name: str, user=None) -> None:
    """Let a quieted worker take jobs again (allowed for a worker that is gone: it clears the mark)."""
    permit(user, "unquiet")
    if not get_connection().srem(QUIET_KEY, name):
        raise ActionNotAllowed(f"worker {name!r} is not quiet")
    audit(user, ACTIONS["unquiet"].audit, worker=name)


def stop_worker(name: str, user=None) -> None:
    """Ask a worker for a warm shutdown (RQ's shutdown command): it finishes its current job, then exits."""
    permit(user, "stop")
    connection = _registered_worker(name)
    # RQ publishes the command on the worker's channel; a worker that is gone hears nothing.
    if not connection.pubsub_numsub(PUBSUB_CHANNEL_TEMPLATE % name)[0][1]:
        raise ActionNotAllowed(f"worker {name!r} is not listening for commands (stopped or cut off); "
                               "nothing was sent")
    send_shutdown_command(connection, name)
    audit(user, ACTIONS["stop"].audit, worker=name)


def _registered_worker(name: str):
    """The Redis connection holding worker `name`'s registration; ActionNotAllowed if none does."""
    connection = get_connection()
    if not connection.sismember(REDIS_WORKER_KEYS, f"{Worker.redis_worker_namespace_prefix}{name}"):
        raise ActionNotAllowed(f"no worker named {name!r} is registered")
    return connection
