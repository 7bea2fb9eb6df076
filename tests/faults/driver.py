"""Django-side steps of the fault scenarios, run in a subprocess against the fault database:

    python -m tests.faults.driver FUNCTION '{"keyword": "arguments"}'

prints the function's result as JSON on its last line (see Rig.drive).
"""

from __future__ import annotations

import json
import sys
import threading

import django

WORK = "tests.faults.jobs.work"


def operator():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    user, _ = get_user_model().objects.get_or_create(username="operator")
    user.user_permissions.add(Permission.objects.get(codename="operate_backgroundtaskrecord"))  # jobs.api checks
    return user


def enqueue_mix(count: int) -> dict:
    """The killed-workers mix, interleaved, in one transaction (pushed one by one on commit)."""
    from django.db import transaction

    from jobs import api

    kinds: dict[str, int] = {}
    with transaction.atomic():
        for i in range(count):
            if i % 25 == 0:
                kind, options = "slow", dict(args=(2.0,), retries=1)  # 2 s: the kills' targets
            elif i % 10 == 5:
                kind, options = "fails", dict(kwargs={"fail_first": 99})
            elif i % 10 == 3:
                kind, options = "fails-once-then-ok", dict(kwargs={"fail_first": 1}, retries=2)
            elif i % 10 == 7:
                kind, options = "fails-every-retry", dict(kwargs={"fail_first": 99}, retries=1)
            else:
                kind, options = "short", dict(args=(0.01,))
            api.enqueue(WORK, *options.get("args", ()), retries=options.get("retries", 0),
                        **options.get("kwargs", {}))
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def enqueue_work(count: int, seconds: float = 0.0, fail_first: int = 0, retries: int = 0,
                 many: bool = False) -> list[str]:
    """`count` work jobs in one transaction: one enqueue() each, or one enqueue_many()."""
    from django.db import transaction

    from jobs import api

    with transaction.atomic():
        if many:
            records = api.enqueue_many([api.Call(WORK, seconds, fail_first=fail_first) for _ in range(count)],
                                       retries=retries)
        else:
            records = [api.enqueue(WORK, seconds, fail_first=fail_first, retries=retries) for _ in range(count)]
    return [str(r.pk) for r in records]


def rolled_back() -> dict:
    """Enqueue in three ways that all roll back; return what the database holds afterwards."""
    from django.db import transaction

    from jobs import api
    from jobs.models import BackgroundTaskRecord

    class Abort(Exception):
        pass

    ids = []
    try:
        with transaction.atomic():
            ids += [str(api.enqueue(WORK, 0.0).pk) for _ in range(5)]
            ids += [str(r.pk) for r in api.enqueue_many([api.Call(WORK, 0.0) for _ in range(5)])]
            raise Abort
    except Abort:
        pass
    with transaction.atomic():  # the outer transaction commits, the savepoint inside it does not
        kept = api.enqueue(WORK, 0.0)
        try:
            with transaction.atomic():
                ids.append(str(api.enqueue(WORK, 0.0).pk))
                raise Abort
        except Abort:
            pass
    return {"rolled_back": ids, "kept": str(kept.pk),
            "rows_left": BackgroundTaskRecord.objects.filter(pk__in=ids).count()}


def concurrent_retries(record_id: str, clicks: int) -> list[str]:
    """`clicks` threads, each with its own database connection, retry one job at the same instant."""
    from django.db import connection

    from jobs import api
    from jobs.models import BackgroundTaskRecord

    user = operator()
    barrier = threading.Barrier(clicks)
    outcomes: list[str] = []

    def click():
        try:
            handle = BackgroundTaskRecord.objects.get(pk=record_id)
            barrier.wait(timeout=30)
            api.retry(handle, user=user)
            outcomes.append("retried")
        except api.ActionNotAllowed:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(clicks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sorted(outcomes)


def cancel(record_id: str) -> str:
    """The dashboard's cancel button, as the operator: its outcome, or 'refused: …'."""
    from jobs import api
    from jobs.models import BackgroundTaskRecord

    try:
        return api.cancel(BackgroundTaskRecord.objects.get(pk=record_id), user=operator())
    except api.ActionNotAllowed as exc:
        return f"refused: {exc}"


def cancel_race(seconds: float, after: float) -> dict:
    """Enqueue a `seconds` job, and cancel it `after` seconds into its run (around its end)."""
    import time

    from django.utils import timezone

    from jobs import api

    record = api.enqueue(WORK, seconds)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        record.refresh_from_db(fields=["status", "started_at"])
        if record.status != "pending":
            break
        time.sleep(0.01)
    if record.started_at:
        time.sleep(max(0.0, after - (timezone.now() - record.started_at).total_seconds()))
    return {"id": str(record.pk), "answer": cancel(str(record.pk))}


def reconcile() -> dict:
    from jobs.reconcile import reconcile_records

    report = reconcile_records()
    return {"pushed": len(report.pushed), "synced": len(report.synced), "lost": len(report.lost),
            "errors": report.errors}


if __name__ == "__main__":
    django.setup()
    name, arguments = sys.argv[1], json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}")
    result = globals()[name](**arguments)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
