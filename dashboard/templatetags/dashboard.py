"""The dashboard's template filters and tags: thin registrations of dashboard.display and dashboard.rows."""

from __future__ import annotations

from django import template

from jobs.actions import ACTIONS, BULK_VERBS

from .. import display, rows

register = template.Library()

for _name in ("seconds", "ms", "age", "percent", "shortid", "pretty_json", "masked", "func_module", "func_name",
              "lines", "iso", "compact_json", "run_ms"):
    register.filter(_name, getattr(display, _name))


# --- the job row, badge and buttons: built in Python for speed (see dashboard/rows.py) ----------

@register.simple_tag(takes_context=True)
def job_row(context, record):
    return rows.job_row(record, rows.RowContext.of(context))


@register.simple_tag(takes_context=True)
def job_status(context, record):
    return rows.status_badge(record, rows.RowContext.of(context).now)


@register.simple_tag(takes_context=True)
def job_actions(context, record, where):
    return rows.job_actions(record, rows.RowContext.of(context), where)


# --- the operator actions the viewer may use (jobs.actions) ----------------------------------

@register.simple_tag(takes_context=True)
def allowed_actions(context) -> frozenset:
    """{% allowed_actions as can %}: the verbs the viewer may use ("retry", …, "bulk")."""
    if "request" not in context:  # an error page rendered without its request: offer nothing
        return frozenset()
    return rows.RowContext.of(context).allowed


@register.simple_tag(takes_context=True)
def bulk_actions(context) -> list:
    """{% bulk_actions as actions %}: the bulk bar's actions the viewer may use (none without "bulk")."""
    allowed = rows.RowContext.of(context).allowed
    return [ACTIONS[verb] for verb in BULK_VERBS if verb in allowed] if "bulk" in allowed else []


@register.filter
def question(action, name) -> str:
    """{{ action|question:name }}: the action's confirmation question about `name`."""
    return action.question(str(name))


@register.simple_tag
def action(verb: str):
    """{% action "pause" as pause %}: one row of the actions table (label, confirmation, style)."""
    return ACTIONS[verb]
