"""Masked keyword arguments: the values of sensitive-looking names (password, api_key…), which
no page, admin filter or search may reveal (DASHBOARD_SENSITIVE_KWARGS lists the words)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

MASK = "••••••"
# For a project that embeds the jobs app without the dashboard's settings.
DEFAULT_WORDS = ("password", "secret", "token", "api_key", "apikey", "authorization", "credential")


def sensitive_words() -> tuple[str, ...]:
    """The lower-case words a keyword argument's name must not contain to be shown."""
    return tuple(w.lower() for w in getattr(settings, "DASHBOARD_SENSITIVE_KWARGS", DEFAULT_WORDS))


def is_sensitive(name: Any) -> bool:
    """Whether a keyword argument of this name is masked."""
    lowered = str(name).lower()
    return any(word in lowered for word in sensitive_words())


def mask_kwargs(kwargs: Any) -> Any:
    """kwargs with the values of sensitive names replaced by MASK (anything not a dict as it is)."""
    if not isinstance(kwargs, dict):
        return kwargs
    return {k: MASK if is_sensitive(k) else v for k, v in kwargs.items()}
