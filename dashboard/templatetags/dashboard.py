"""Formatting filters for the dashboard: ages, durations, JSON, masking. No logic beyond display."""

from __future__ import annotations

import json
import re
from datetime import datetime

from django import template
from django.conf import settings
from django.utils import timezone

register = template.Library()
MASK = "••••••"
# JSON may hold lone surrogates ("\\udcff", e.g. from bytes decoded with surrogateescape): as text
# they cannot be encoded to UTF-8, so the page shows U+FFFD instead of failing.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _json_text(value, **options) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, **options)
    except RecursionError:
        return "(nested too deeply to show)"
    return LONE_SURROGATE.sub("\ufffd", text)


@register.filter
def seconds(value) -> str:
    """A duration in seconds as '850 ms', '12.3 s', '4 m 05 s', '3 h 02 m' or '2 d 4 h'."""
    if value in (None, ""):
        return "—"
    value = float(value)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(value), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} m"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@register.filter
def ms(value) -> str:
    """A duration in milliseconds, formatted like `seconds`."""
    return "—" if value in (None, "") else seconds(float(value) / 1000)


@register.filter
def age(value: datetime | None) -> str:
    """How long ago a datetime was: '12.0 s', '3 m 04 s' (future times read 'in …')."""
    if not value:
        return "—"
    delta = (timezone.now() - value).total_seconds()
    return f"in {seconds(-delta)}" if delta < 0 else seconds(delta)


@register.filter
def percent(fraction) -> str:
    return "—" if fraction is None else f"{float(fraction) * 100:.0f}%"


@register.filter
def shortid(value) -> str:
    return str(value)[:8]


@register.filter
def pretty_json(value) -> str:
    """Indented JSON text (escaped by the template like any other string)."""
    return _json_text(value, indent=2, sort_keys=True)


@register.filter
def masked(kwargs):
    """kwargs with the values of sensitive-looking names (password, token…) replaced."""
    if not isinstance(kwargs, dict):
        return kwargs
    words = settings.DASHBOARD_SENSITIVE_KWARGS
    return {k: MASK if any(w in str(k).lower() for w in words) else v for k, v in kwargs.items()}


@register.filter
def func_module(path: str) -> str:
    """'jobs.demo.add' → 'jobs.demo.' (shown dimmed before the function name)."""
    return path.rsplit(".", 1)[0] + "." if "." in path else ""


@register.filter
def func_name(path: str) -> str:
    return path.rsplit(".", 1)[-1]


@register.filter
def lines(text: str) -> int:
    return (text or "").count("\n") + 1


@register.filter
def iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


@register.filter
def compact_json(value) -> str:
    """One-line JSON for a table cell."""
    return _json_text(value, separators=(", ", ": "))


# --- the job row, badge and buttons: built in Python for speed (see dashboard/rows.py) ----------

@register.simple_tag(takes_context=True)
def job_row(context, record):
    from ..rows import RowContext, job_row

    return job_row(record, RowContext.of(context))


@register.simple_tag(takes_context=True)
def job_status(context, record):
    from ..rows import RowContext, status_badge

    return status_badge(record, RowContext.of(context).now)


@register.simple_tag(takes_context=True)
def job_actions(context, record, where):
    from ..rows import RowContext, job_actions

    return job_actions(record, RowContext.of(context), where)
