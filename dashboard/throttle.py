"""Login throttling: after DASHBOARD_LOGIN_MAX_FAILURES failed logins for one username from one
address within DASHBOARD_LOGIN_WINDOW_SECONDS, that pair is refused without checking the password.

Design: per (username, address) the cache keeps the times of the latest failures, written with
the window as timeout. The cache is the database cache (settings.CACHES), so every gunicorn
worker sees the same counts. Two racing failures may both read the old list and one be lost: an
attacker gains at most one try per concurrent request, which is acceptable for a simple design.

The address is the client's: REMOTE_ADDR, unless that is one of settings.TRUSTED_PROXIES; then
X-Forwarded-For is read from its right end (what the proxies appended) to the first address that
is not a trusted proxy. Behind the proxy every request has the proxy's REMOTE_ADDR, so keying on
it would let anyone lock anyone out; an address a client writes into the header itself sits to
the left of the one its proxy appended, and is never read.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import time

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


def _key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username.strip().lower()}\0{address}".encode("utf-8", "replace")).hexdigest()
    return f"dashboard:login-failures:{digest}"


def client_address(request: HttpRequest | None) -> str:
    """The client's address: REMOTE_ADDR, or behind TRUSTED_PROXIES the one they forwarded."""
    if request is None:
        return ""
    address = request.META.get("REMOTE_ADDR") or ""
    proxies = _networks(tuple(settings.TRUSTED_PROXIES))
    if not _within(address, proxies):
        return address
    for hop in reversed(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")):
        hop = hop.strip()
        if not _is_address(hop):
            break  # not an address: nothing to its left can be trusted either
        address = hop
        if not _within(hop, proxies):
            break
    return address


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _within(address: str, networks: tuple) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _recent(key: str, now: float) -> list[float]:
    window = settings.DASHBOARD_LOGIN_WINDOW_SECONDS
    return [t for t in cache.get(key) or [] if t > now - window]


def locked_for(username: str, request: HttpRequest | None) -> int:
    """Seconds until this username may try again from this address; 0 if it may now."""
    now = time.time()
    recent = _recent(_key(username, client_address(request)), now)
    limit = settings.DASHBOARD_LOGIN_MAX_FAILURES
    if len(recent) < limit:
        return 0
    # Unlocked once the oldest of the last `limit` failures leaves the window.
    return max(1, math.ceil(recent[-limit] + settings.DASHBOARD_LOGIN_WINDOW_SECONDS - now))


def record_failure(username: str, request: HttpRequest | None) -> int:
    """Count one failed login; returns the failures in the window so far."""
    now = time.time()
    key = _key(username, client_address(request))
    recent = (_recent(key, now) + [now])[-settings.DASHBOARD_LOGIN_MAX_FAILURES:]
    cache.set(key, recent, timeout=settings.DASHBOARD_LOGIN_WINDOW_SECONDS)
    logger.warning("login failed for %r from %s (%d in the window)", username, client_address(request), len(recent))
    return len(recent)


def clear_failures(username: str, request: HttpRequest | None) -> None:
    cache.delete(_key(username, client_address(request)))


def answer_throttled(response: HttpResponse) -> HttpResponse:
    """A login page whose form was refused for too many failures answers 429 with Retry-After."""
    form = (getattr(response, "context_data", None) or {}).get("form")
    minutes = getattr(form, "throttled_minutes", 0)
    if minutes:
        response.status_code = 429
        response["Retry-After"] = str(minutes * 60)
    return response


class ThrottledMixin:
    """An authentication form that refuses a locked-out username+address before authenticating."""

    throttled_minutes = 0

    def clean(self):
        username = self.data.get("username") or ""
        wait = locked_for(username, self.request)
        if wait:
            self.throttled_minutes = math.ceil(wait / 60)
            logger.warning("login refused for %r from %s: too many failures", username, client_address(self.request))
            raise forms.ValidationError(
                f"Too many failed attempts. Try again in {self.throttled_minutes} "
                f"minute{'s' if self.throttled_minutes != 1 else ''}.", code="throttled")
        try:
            cleaned = super().clean()
        except forms.ValidationError:
            record_failure(username, self.request)
            raise
        clear_failures(username, self.request)
        return cleaned


class LoginForm(ThrottledMixin, AuthenticationForm):
    pass


class AdminLoginForm(ThrottledMixin, AdminAuthenticationForm):
    pass
