"""Response headers (framing, CSP, sniffing), CSRF on every POST, and `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import Status
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db

CSP = {
    "default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "img-src": "'self' data:",
    "frame-ancestors": "'none'", "form-action": "'self'", "base-uri": "'none'",
}


def _policy(header: str) -> dict[str, str]:
    parts = (p.strip().split(None, 1) for p in header.split(";") if p.strip())
    return {p[0]: p[1] if len(p) > 1 else "" for p in parts}


@pytest.fixture
def urls(make_record, redis_conn):
    record = make_record(Status.FAILED)
    return [reverse(n) for n in ("overview", "job_list", "failure_list", "worker_list", "queue_list", "audit_list")] \
        + [reverse("job_detail", args=[record.pk])]


def test_every_page_and_fragment_carries_the_security_headers(operator, urls):
    responses = [operator.get(u) for u in urls] + [operator.get(u, HTTP_HX_REQUEST="true") for u in urls]
    responses += [operator.get("/jobs/00000000-0000-0000-0000-000000000000/"), operator.get("/healthz"),
                  Client().get(reverse("login")), Client().get("/admin/login/")]
    for response in responses:
        assert response["X-Frame-Options"] == "DENY", response.request["PATH_INFO"]
        assert _policy(response["Content-Security-Policy"]) == CSP, response.request["PATH_INFO"]
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"


def test_no_template_has_inline_script_or_style():
    """What the CSP forbids must not be there in the first place (the browser test sees it too)."""
    offenders = []
    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for needle in ("style=", "<style", "javascript:", " onclick=", " onload=", " onerror=", "hx-on"):
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)}: {needle}")
        for line in text.splitlines():
            if "<script" in line and "src=" not in line and "htmx_script" not in line:
                offenders.append(f"{path.relative_to(ROOT)}: inline <script>")
    assert not offenders


def test_htmx_is_told_not_to_inject_its_indicator_style(operator, urls):
    body = operator.get(urls[0]).content.decode()
    assert '<meta name="htmx-config"' in body and '"includeIndicatorStyles": false' in body


# --- CSRF ---------------------------------------------------------------------------------------

def _csrf_client(user) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get(reverse("overview"))
    return client, client.cookies["csrftoken"].value


@pytest.mark.parametrize("name, data, ok", [
    ("job_retry", {}, 302),
    ("job_cancel", {"confirmed": "1"}, 302),
    ("job_delete", {"confirmed": "1"}, 302),
    ("job_bulk", {"action": "retry", "ids": "FAILED"}, 200),
    ("queue_pause", {}, 302),
    ("queue_resume", {}, 302),
    ("logout", {}, 302),
])
def test_every_post_needs_the_csrf_token(name, data, ok, operator_user, make_record, redis_conn):
    failed, pending, done = make_record(Status.FAILED), make_record(Status.PENDING), make_record(Status.COMPLETED)
    args = {"job_retry": [failed.pk], "job_cancel": [pending.pk], "job_delete": [done.pk],
            "queue_pause": ["default"], "queue_resume": ["default"]}.get(name, [])
    url = reverse(name, args=args)
    data = {**data, "ids": [str(failed.pk)]} if data.get("ids") else data
    client, token = _csrf_client(operator_user)
    refused = client.post(url, data)
    assert refused.status_code == 403 and b"CSRF" in refused.content
    assert client.post(url, data, HTTP_X_CSRFTOKEN="wrong" * 8).status_code == 403
    assert client.post(url, {**data, "csrfmiddlewaretoken": token}).status_code == ok  # the form field
    if name not in ("logout", "job_delete", "job_cancel", "job_retry"):
        client.force_login(operator_user)
        assert client.post(url, data, HTTP_X_CSRFTOKEN=token).status_code == ok  # htmx's header


def test_refused_posts_change_nothing(operator_user, make_record, redis_conn):
    from jobs.models import AuditEntry

    record = make_record(Status.FAILED)
    client, _ = _csrf_client(operator_user)
    client.post(reverse("job_retry", args=[record.pk]), HTTP_HX_REQUEST="true")
    record.refresh_from_db()
    assert record.status == Status.FAILED and not AuditEntry.objects.exists()


def test_login_needs_the_csrf_token(readonly_user):
    client = Client(enforce_csrf_checks=True)
    assert client.post(reverse("login"), {"username": "reader", "password": "pw"}).status_code == 403
    client.get(reverse("login"))
    token = client.cookies["csrftoken"].value
    response = client.post(reverse("login"), {"username": "reader", "password": "pw", "csrfmiddlewaretoken": token})
    assert response.status_code == 302


# --- production settings ------------------------------------------------------------------------

PRODUCTION = {
    "DEBUG": "0", "SECRET_KEY": "k3y-" + "f7Qz9xLp2mVb8NcR4tYw6HsJ1dKe5GaU0iOoPlMnBvCxZ" * 2,
    "ALLOWED_HOSTS": "jobs.example.com", "CSRF_TRUSTED_ORIGINS": "https://jobs.example.com",
}


def _manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    # A bare environment: only what production sets (none of the test run's own variables).
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {**PRODUCTION, "JOBDECK_VAR_DIR": str(tmp_path)}
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_deploy_catches_a_production_site_served_without_https(tmp_path):
    env = {**PRODUCTION, "JOBDECK_VAR_DIR": str(tmp_path), "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0"}
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W008" in result.stderr + result.stdout and "security.W012" in result.stderr + result.stdout


def test_development_defaults_stay_plain_http():
    """`make run` (DEBUG on): no https redirect, no secure-only cookies, so http://127.0.0.1 works."""
    result = _manage("shell", "-c", "from django.conf import settings as s; print(s.DEBUG, s.SECURE_SSL_REDIRECT, "
                     "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS)",
                     env={"JOBDECK_VAR_DIR": "/tmp/sec-var-dev"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["True", "False", "False", "False", "0"]
