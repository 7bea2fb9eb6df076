"""System checks of the engine's settings: `manage.py check` and every start-up report a bad entry."""

from __future__ import annotations

from django.core.checks import Error, register


@register()
def check_periodic_entries(app_configs=None, **kwargs) -> list[Error]:
    """One error per periodic entry that cannot run (bad function, cron string, queue, timezone...)."""
    from .periodic import load_entries

    _, errors = load_entries()
    return [Error(message, hint="Fix the entry; the clock skips it and runs the others meanwhile.",
                  obj=name, id="jobs.E101") for name, message in errors.items()]
