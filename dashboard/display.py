"""Display helpers: ages, durations, JSON, masking. No logic beyond display.

Their own module, as the admin's `utils` is: the template filters (templatetags.dashboard) and
the rows built in Python (dashboard.rows) both read them, and neither imports the other.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from django.conf import settings
from django.utils import timezone

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


def ms(value) -> str:
    """A duration in milliseconds, formatted like `seconds`."""
    return "—" if value in (None, "") else seconds(float(value) / 1000)


def age(value: datetime | None) -> str:
    """How long ago a datetime was: '12.0 s', '3 m 04 s' (future times read 'in …')."""
    if not value:
        return "—"
    delta = (timezone.now() - value).total_seconds()
    return f"in {seconds(-delta)}" if delta < 0 else seconds(delta)


def percent(fraction) -> str:
    return "—" if fraction is None else f"{float(fraction) * 100:.0f}%"


def shortid(value) -> str:
    return str(value)[:8]


def pretty_json(value) -> str:
    """Indented JSON text (escaped by the template like any other string)."""
    return _json_text(value, indent=2, sort_keys=True)


def masked(kwargs):
    """kwargs with the values of sensitive-looking names (password, token…) replaced."""
    if not isinstance(kwargs, dict):
        return kwargs
    words = settings.DASHBOARD_SENSITIVE_KWARGS
    return {k: MASK if any(w in str(k).lower() for w in words) else v for k, v in kwargs.items()}


def func_module(path: str) -> str:
    """'jobs.demo.add' → 'jobs.demo.' (shown dimmed before the function name)."""
    return path.rsplit(".", 1)[0] + "." if "." in path else ""


def func_name(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def lines(text: str) -> int:
    return (text or "").count("\n") + 1


def iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def compact_json(value) -> str:
    """One-line JSON for a table cell."""
    return _json_text(value, separators=(", ", ": "))




def run_ms(record) -> int | None:
    """How long a job's last run took: its stored duration, else finished minus started.

    Only a completion stores `duration_ms`; a failed, timed-out or cancelled run still has
    both times, and "—" hid how long it ran before it failed.
    """
    if record.duration_ms is not None:
        return record.duration_ms
    if record.started_at and record.finished_at and record.finished_at >= record.started_at:
        return int((record.finished_at - record.started_at).total_seconds() * 1000)
    return None
