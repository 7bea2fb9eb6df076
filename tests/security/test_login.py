"""Logging in: no open redirect through `next`, and throttling after repeated failures."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse

from dashboard import throttle

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
EVIL_NEXT = [
    "//evil.com", "https://evil.com", "http://evil.com/jobs/", "/\\evil.com", "\\\\evil.com", "\\/evil.com",
    "///evil.com", "https:evil.com", "//evil.com@testserver", "http://testserver@evil.com",
    "javascript:alert(1)", "\x00//evil.com", "/\x00/evil.com", " //evil.com", "\t//evil.com", "//evil%2ecom",
    "http:/\\/evil.com", "https://evil.com%2f%2e%2e", "data:text/html,<script>alert(1)</script>",
]


@pytest.fixture(autouse=True)
def empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _login(client: Client, username: str = "reader", password: str = "pw", **extra):
    return client.post(LOGIN, {"username": username, "password": password, **extra}, REMOTE_ADDR="10.9.8.7")


def _on_site(location: str) -> bool:
    """A path on this host, as a browser reads it (browsers take a backslash for a slash)."""
    normal = location.replace("\\", "/")
    return normal.startswith("/") and not normal.startswith("//") and not urlsplit(normal).netloc


@pytest.mark.parametrize("target", EVIL_NEXT)
def test_next_never_leads_off_site(client, readonly_user, target):
    response = _login(client, next=target)
    assert response.status_code == 302
    assert _on_site(response["Location"]), target
    page = client.get(LOGIN, {"next": target})  # and the form carries it escaped
    assert page.status_code == 200
    assert b"<script>alert" not in page.content


def test_next_on_this_site_is_followed(client, readonly_user):
    assert _login(client, next="/jobs/?state=failed")["Location"] == "/jobs/?state=failed"


def test_actions_ignore_an_off_site_next(operator, make_record, redis_conn):
    record = make_record("failed")
    for target in EVIL_NEXT[:8]:
        response = operator.post(reverse("job_retry", args=[record.pk]), {"next": target})
        assert response.status_code == 302 and _on_site(response["Location"]), target


def test_five_failures_lock_the_username_from_that_address(client, readonly_user, caplog, settings):
    with caplog.at_level(logging.WARNING, logger="dashboard.throttle"):
        for _ in range(settings.DASHBOARD_LOGIN_MAX_FAILURES):
            response = _login(client, password="wrong")
            assert response.status_code == 200
            assert b"did not match" in response.content
    assert caplog.text.count("login failed for 'reader' from 10.9.8.7") == 5

    response = _login(client)  # the right password, but locked: it is not even checked
    assert response.status_code == 429
    assert b"Too many failed attempts. Try again in 15 minutes." in response.content
    assert response["Retry-After"] == "900"
    assert SESSION_KEY not in client.session
    assert "login refused for 'reader' from 10.9.8.7" in caplog.text


def test_a_locked_login_does_not_check_the_password(client, readonly_user, monkeypatch, settings):
    for _ in range(settings.DASHBOARD_LOGIN_MAX_FAILURES):
        _login(client, password="wrong")
    monkeypatch.setattr("django.contrib.auth.forms.authenticate",
                        lambda *a, **k: pytest.fail("authenticate called while locked"))
    assert _login(client).status_code == 429


def test_the_lock_is_per_username_and_address(client, readonly_user, operator_user, settings):
    for _ in range(settings.DASHBOARD_LOGIN_MAX_FAILURES):
        _login(client, password="wrong")
    assert _login(client, "operator").status_code == 302  # another user from the same address
    other = Client()
    response = other.post(LOGIN, {"username": "reader", "password": "pw"}, REMOTE_ADDR="10.1.1.1")
    assert response.status_code == 302  # the same user from elsewhere
    # Varying the case of the name is no way around it.
    assert _login(Client(), "READER", "wrong").status_code == 429


def test_the_lock_lifts_when_the_window_passes(client, readonly_user, settings, monkeypatch):
    import time

    start = time.time()
    monkeypatch.setattr(throttle.time, "time", lambda: start)
    for _ in range(settings.DASHBOARD_LOGIN_MAX_FAILURES):
        _login(client, password="wrong")
    monkeypatch.setattr(throttle.time, "time", lambda: start + 14 * 60 + 10)
    response = _login(client)
    assert response.status_code == 429 and b"Try again in 1 minute." in response.content
    monkeypatch.setattr(throttle.time, "time", lambda: start + 15 * 60 + 1)
    assert _login(client).status_code == 302


def test_a_successful_login_clears_the_count(client, readonly_user, settings):
    for _ in range(settings.DASHBOARD_LOGIN_MAX_FAILURES - 1):
        _login(client, password="wrong")
    assert _login(client).status_code == 302
    client.post(reverse("logout"))
    for _ in range(settings.DASHBOARD_LOGIN_MAX_FAILURES - 1):
        assert _login(client, password="wrong").status_code == 200  # counting from zero again
    assert _login(client).status_code == 302


def test_the_admin_login_is_throttled_too(client, superuser, settings):
    for _ in range(settings.DASHBOARD_LOGIN_MAX_FAILURES):
        client.post("/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR="10.9.8.7")
    response = client.post("/admin/login/", {"username": "root", "password": "pw"}, REMOTE_ADDR="10.9.8.7")
    assert b"Too many failed attempts" in response.content
    assert response.status_code == 429 and response["Retry-After"] == "900"  # as the dashboard's login
    assert SESSION_KEY not in client.session


def test_hostile_login_forms_fail_cleanly(client):
    for data in ({}, {"username": "x" * 10_000, "password": "y"}, {"username": "a\x00b", "password": "p"},
                 {"username": "\ufffd", "password": "\ufffd"}, {"username": ["a", "b"], "password": "p"}):
        assert client.post(LOGIN, data).status_code == 200
    body = b"username=%FF%FE&password=%C3%28"
    response = client.post(LOGIN, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
