"""Behind a proxy: the login throttle keys on the client the proxy reports (TRUSTED_PROXIES), and
gunicorn believes X-Forwarded-Proto exactly when Django does (gunicorn.conf.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import SESSION_KEY
from django.test import Client, RequestFactory

from dashboard.throttle import client_address
from jobs.redis_server import free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
PROXY = "127.0.0.1"


@pytest.fixture(autouse=True)
def empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = [PROXY, "10.0.0.0/8"]


def _via_proxy(client: Client, forwarded_for: str, password: str, username: str = "reader"):
    """A login as nginx passes it on: from the proxy's address, the client appended to X-Forwarded-For."""
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=PROXY,
                       HTTP_X_FORWARDED_FOR=forwarded_for)


def test_one_client_behind_the_proxy_cannot_lock_out_another(behind_proxy, readonly_user, settings):
    for _ in range(settings.DASHBOARD_LOGIN_MAX_FAILURES):
        assert _via_proxy(Client(), "203.0.113.5", "wrong").status_code == 200
    assert _via_proxy(Client(), "203.0.113.5", "pw").status_code == 429  # the guesser is locked out
    owner = Client()
    assert _via_proxy(owner, "198.51.100.7", "pw").status_code == 302  # the owner, elsewhere, is not
    assert SESSION_KEY in owner.session


def test_a_forged_forwarded_for_does_not_escape_the_lock(behind_proxy, readonly_user, settings):
    for n in range(settings.DASHBOARD_LOGIN_MAX_FAILURES):
        # The client writes its own X-Forwarded-For; the proxy appends the address it saw.
        _via_proxy(Client(), f"192.0.2.{n}, 203.0.113.5", "wrong")
    assert _via_proxy(Client(), "192.0.2.99, 203.0.113.5", "pw").status_code == 429


def test_without_trusted_proxies_the_header_is_ignored(readonly_user, settings):
    settings.TRUSTED_PROXIES = []
    for n in range(settings.DASHBOARD_LOGIN_MAX_FAILURES):
        Client().post(LOGIN, {"username": "reader", "password": "wrong"}, REMOTE_ADDR="198.51.100.1",
                      HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response = Client().post(LOGIN, {"username": "reader", "password": "pw"}, REMOTE_ADDR="198.51.100.1",
                             HTTP_X_FORWARDED_FOR="192.0.2.200")
    assert response.status_code == 429


@pytest.mark.parametrize("remote, forwarded, client", [
    ("198.51.100.1", "192.0.2.1", "198.51.100.1"),  # not from a proxy: the header is the client's word
    (PROXY, "", PROXY),  # a proxy that forwarded nothing
    (PROXY, "192.0.2.1", "192.0.2.1"),
    (PROXY, "192.0.2.9, 192.0.2.1", "192.0.2.1"),  # the left one is the client's own claim
    (PROXY, "192.0.2.1, 10.1.2.3", "192.0.2.1"),  # two proxies deep
    (PROXY, "10.9.9.9, 10.1.2.3", "10.9.9.9"),  # every hop a proxy: the farthest
    (PROXY, "not-an-ip, 192.0.2.1", "192.0.2.1"),
    (PROXY, "192.0.2.1, garbage", PROXY),  # the proxy's own entry is not an address: stop there
    ("::1", "2001:db8::7", "::1"),  # ::1 is not in the list
])
def test_the_client_address(behind_proxy, remote, forwarded, client):
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == client


def test_a_bad_trusted_proxy_is_refused_at_start(subprocess_env):
    env = {**subprocess_env, "TRUSTED_PROXIES": "127.0.0.1,not-a-network"}
    done = subprocess.run([sys.executable, "manage.py", "check"], cwd=django_settings.BASE_DIR, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "TRUSTED_PROXIES: 'not-a-network' is not an address or network" in done.stderr


# --- gunicorn, as the Procfile starts it ----------------------------------------------------------------

def _procfile_web() -> str:
    lines = Path(django_settings.BASE_DIR, "Procfile").read_text().splitlines()
    return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("web:"))


def _get(url: str, **headers) -> tuple[int, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        response = urllib.request.build_opener(NoRedirect).open(urllib.request.Request(url, headers=headers), timeout=10)
        return response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")


def _answers(url: str) -> bool:
    try:
        return _get(url)[0] in (200, 503)
    except urllib.error.URLError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("trust, secure", [("0", False), ("1", True)])
def test_gunicorn_believes_x_forwarded_proto_only_when_django_does(subprocess_env, trust, secure):
    port = free_port()
    env = {**subprocess_env, "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "1", "DEBUG": "0",
           "SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "127.0.0.1", "TRUST_X_FORWARDED_PROTO": trust,
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    env.pop("FORWARDED_ALLOW_IPS", None)
    web = subprocess.Popen(["sh", "-c", "exec " + _procfile_web()], cwd=django_settings.BASE_DIR, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}{LOGIN}"
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60, message="gunicorn to answer")
        assert _get(url)[0] == 301  # plain http is sent to https (DEBUG=0)
        status, location = _get(url, **{"X-Forwarded-Proto": "https"})
        if secure:
            assert status == 200, status
        else:
            assert (status, location) == (301, f"https://127.0.0.1:{port}{LOGIN}")
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)
