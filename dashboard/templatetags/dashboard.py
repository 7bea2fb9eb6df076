"""The dashboard's template filters and tags: thin registrations of dashboard.display and dashboard.rows."""

from __future__ import annotations

from django import template

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
