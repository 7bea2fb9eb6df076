"""Demo users and jobs for `make run`: something to look at on a fresh machine."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from jobs import api, demo
from jobs.actions import PERMISSIONS
from jobs.models import BackgroundTaskRecord

VIEW = ["view_backgroundtaskrecord", "view_auditentry"]
# The roles, as groups: "operators" hold every action's own permission; "retry only" shows one alone.
GROUPS = {
    "operators": VIEW + [codename for codename, _ in PERMISSIONS],
    "retry only": VIEW + ["retry_job"],
    "viewers": VIEW,
}
DEMO_USERS = [
    ("ops", "ops", "operator: retry, cancel, delete, pause, bulk, workers", "operators"),
    ("viewer", "viewer", "read-only", "viewers"),
]


def create_groups() -> dict[str, Group]:
    """The role groups above, with exactly their permissions."""
    groups = {}
    for name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))
        groups[name] = group
    return groups


def create_demo_users() -> list[tuple[str, str, str]]:
    """Staff users `ops` (operators) and `viewer` (read-only); returns (username, password, role)."""
    User = get_user_model()
    groups = create_groups()
    created = []
    for username, password, role, group in DEMO_USERS:
        user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True})
        user.is_staff = True
        user.set_password(password)
        user.save()
        user.user_permissions.clear()
        user.groups.set([groups[group]])
        created.append((username, password, role))
    return created


def enqueue_demo_jobs() -> list[BackgroundTaskRecord]:
    """Some jobs that succeed, some that fail (one after retries), one long one reporting progress."""
    records = [api.enqueue(demo.add, i, i * 2, queue=q) for i, q in enumerate(["default", "high", "low"] * 4)]
    records += [api.enqueue(demo.echo, "invoice", 1042, customer={"id": 7, "name": "ACME"}) for _ in range(3)]
    records += [api.enqueue(demo.fail, "card declined: insufficient funds", queue="high")]
    records += [api.enqueue(demo.fail, "upstream timeout", retries=2, retry_intervals=[2, 5])]
    records += [api.enqueue(demo.flaky, 0.5, retries=3, queue="low") for _ in range(4)]
    records += [api.enqueue(demo.sleep, 5, timeout=2, queue="low")]
    records += [api.enqueue(demo.long_report, steps=120, step_seconds=1.0, timeout=600)]
    records += [api.enqueue(demo.add, 40, 2, delay=90)]
    return records
