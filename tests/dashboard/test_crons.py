"""The Crons page: each entry's schedule, next and last run, recent outcomes; pause, resume and run now."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from jobs import periodic
from jobs.models import AuditEntry, BackgroundTaskRecord, PeriodicEntryState, Status

from .conftest import hx

pytestmark = pytest.mark.django_db(transaction=True)

ENTRIES = {
    "nightly-report": {"func": "jobs.demo.echo", "cron": "0 2 * * *", "timezone": "Europe/Paris", "queue": "low",
                       "args": [1], "kwargs": {"full": True}},
    "poll-feed": {"func": "jobs.demo.add", "every": 30, "args": [1, 2]},
    "broken": {"func": "app.tasks.missing", "every": 30},
}


@pytest.fixture
def crons(settings, redis_conn):
    settings.JOBS_PERIODIC = ENTRIES
    return ENTRIES


def card(body: str, name: str) -> str:
    """The <article> of entry `name` in the rendered page."""
    match = re.search(rf'<article [^>]*data-entry="{re.escape(name)}">(.*?)</article>', body, re.DOTALL)
    assert match, f"no card for {name}"
    return match.group(1)


def test_the_page_shows_schedule_next_and_last_run_and_recent_outcomes(reader, crons, make_record):
    failed = make_record(Status.FAILED, func_path="jobs.demo.add", periodic_entry="poll-feed")
    done = make_record(Status.COMPLETED, func_path="jobs.demo.add", periodic_entry="poll-feed", age=timedelta(0))
    make_record(Status.COMPLETED, func_path="jobs.demo.sleep", periodic_entry="retired")  # gone from settings
    response = reader.get(reverse("cron_list"))
    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    body = response.content.decode()
    nightly = card(body, "nightly-report")
    assert "daily at 02:00 (Europe/Paris)" in nightly and ">0 2 * * *</code>" in nightly
    assert "= 02:00 Europe/Paris" in nightly.split("Next run")[1]
    assert "Next run" in nightly and "never" in nightly and "jobs.demo.echo" in nightly
    poll = card(body, "poll-feed")
    assert "every 30 s" in poll and "<code" not in poll.split("Schedule")[1].split("</dd>")[0]
    last = poll.split("Last run")[1].split("</dd>")[0]
    assert reverse("job_detail", args=[done.pk]) in last and "completed" in last
    strip = re.findall(r'<li><a class="s-(\w+)" href="([^"]+)"', poll)
    assert strip == [("failed", reverse("job_detail", args=[failed.pk])),
                     ("completed", reverse("job_detail", args=[done.pk]))]  # oldest first
    assert "bad entry" in card(body, "broken") and "does not import" in card(body, "broken")
    retired = card(body, "retired")
    assert "gone" in retired and "no longer configured" in retired and "completed" in retired
    assert "Run now" not in body  # a reader may not act
    assert 'href="/crons/" aria-current="page"' in body  # in the nav


def test_htmx_request_returns_the_fragment(reader, crons):
    fragment = reader.get(reverse("cron_list"), **hx("cron-table")).content.decode()
    assert fragment.lstrip().startswith('<section id="cron-table"') and "<html" not in fragment
    assert re.search(r'hx-trigger="every \d+s', fragment) and 'data-entry="poll-feed"' in fragment


def test_anonymous_is_sent_to_login(client, crons):
    response = client.get(reverse("cron_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert client.post(reverse("cron_pause", args=["poll-feed"])).status_code == 302
    assert not PeriodicEntryState.objects.filter(paused_at__isnull=False).exists()


def test_without_permission_the_actions_are_forbidden(reader, django_user_model, crons):
    for name in ("cron_pause", "cron_resume", "cron_run"):
        assert reader.post(reverse(name, args=["poll-feed"])).status_code == 403
    nobody = Client()
    nobody.force_login(django_user_model.objects.create_user("staffonly", password="pw", is_staff=True))
    assert nobody.get(reverse("cron_list")).status_code == 403
    assert not BackgroundTaskRecord.objects.exists() and not AuditEntry.objects.exists()


def test_actions_are_post_only_and_need_the_csrf_token(operator_user, crons):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator_user)
    assert client.get(reverse("cron_run", args=["poll-feed"])).status_code == 405
    assert client.post(reverse("cron_pause", args=["poll-feed"])).status_code == 403
    page = client.get(reverse("cron_list")).content.decode()
    form = card(page, "poll-feed").split('<form method="post" action="')[1]
    action, token = form.split('"')[0], re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    assert action == reverse("cron_pause", args=["poll-feed"])
    assert client.post(action, {"csrfmiddlewaretoken": token}).status_code == 302
    assert PeriodicEntryState.objects.get(name="poll-feed").paused


def test_pause_and_resume_without_htmx(operator, crons):
    page = operator.post(reverse("cron_pause", args=["poll-feed"]), follow=True).content.decode()
    assert "poll-feed: paused." in page and "paused" in card(page, "poll-feed")
    assert "Resume</button>" in card(page, "poll-feed")
    periodic.run_due()  # every 30 s would run at once: paused, it does not
    assert not BackgroundTaskRecord.objects.filter(periodic_entry="poll-feed").exists()
    again = operator.post(reverse("cron_pause", args=["poll-feed"]), follow=True).content.decode()
    assert "poll-feed is already paused" in again
    operator.post(reverse("cron_resume", args=["poll-feed"]))
    assert not PeriodicEntryState.objects.get(name="poll-feed").paused
    periodic.run_due()
    assert BackgroundTaskRecord.objects.filter(periodic_entry="poll-feed").count() == 1
    assert list(AuditEntry.objects.order_by("id").values_list("action", "username", "detail")) == [
        ("cron-pause", "operator", {"entry": "poll-feed"}), ("cron-resume", "operator", {"entry": "poll-feed"})]


def test_pause_with_htmx_returns_the_region(operator, crons):
    response = operator.post(reverse("cron_pause", args=["poll-feed"]), **hx("cron-table"))
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<section id="cron-table"')
    assert "Resume</button>" in card(body, "poll-feed") and "jobs-changed" in response["HX-Trigger"]
    conflict = operator.post(reverse("cron_resume", args=["nightly-report"]), **hx("cron-table"))
    assert conflict.status_code == 409 and "is not paused" in conflict["HX-Trigger"]


def test_run_now_enqueues_an_audited_run(operator, crons, drain):
    response = operator.post(reverse("cron_run", args=["nightly-report"]), follow=True)
    assert b"nightly-report: run enqueued now." in response.content
    [record] = BackgroundTaskRecord.objects.filter(periodic_entry="nightly-report")
    audit = AuditEntry.objects.get(action="cron-run")
    assert (audit.record_id, audit.username) == (record.pk, "operator")
    drain()
    body = operator.get(reverse("cron_list")).content.decode()
    last = card(body, "nightly-report").split("Last run")[1].split("</dd>")[0]
    assert reverse("job_detail", args=[record.pk]) in last and "completed" in last


def test_unknown_or_bad_entries_cannot_be_acted_on(operator, crons):
    assert operator.post(reverse("cron_run", args=["nope"])).status_code == 404
    page = operator.post(reverse("cron_run", args=["broken"]), follow=True).content.decode()
    assert "does not import" in page and not BackgroundTaskRecord.objects.exists()
