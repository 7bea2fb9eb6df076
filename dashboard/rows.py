"""The job row, its status badge and its action buttons, built in Python.

The job table is the dashboard's hottest fragment: 50 rows on every poll of every open
page. As a template, each row cost about 0.8 ms (two includes, three `{% url %}`, some
sixty variable lookups and filters: 87% of the fragment's time, docs/PERFORMANCE.md);
built here with `format_html`, as Django's admin builds its change-list rows
(`admin_list.items_for_result`), it costs about 0.1 ms. Every value passes through
`format_html` below, so everything is escaped exactly as in a template.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime

from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeData, SafeString, mark_safe

from jobs.actions import ACTIONS, allowed_verbs
from jobs.models import BackgroundTaskRecord, Status

from .display import age, compact_json, func_module, ms, percent, run_ms

JOB_ACTIONS = [action for action in ACTIONS.values() if action.target == "job"]
CONFIRM = mark_safe(' hx-vals=\'{"confirmed": "1"}\'')


def format_html(format_string: str, *args) -> SafeString:
    """django.utils.html.format_html without its lazy-string wrappers (a third of a row's time):
    every argument is escaped unless it is already safe, with the same escaping as Django's."""
    return SafeString(format_string.format(
        *(arg if isinstance(arg, SafeData) else html.escape(str(arg)) for arg in args)))


PLACEHOLDER = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class RowContext:
    """What every row of one table shares: the verbs the viewer may use, the hidden inputs of its
    forms, the time, and the job URLs."""

    allowed: frozenset
    csrf_input: SafeString
    hidden_inputs: SafeString  # the CSRF token and the page to come back to
    now: datetime
    url_patterns: dict = field(default_factory=dict)

    @classmethod
    def of(cls, context) -> RowContext:
        """Built once per template render (cached in its render_context), from the template context."""
        cached = context.render_context.get(cls)
        if cached is None:
            request = context["request"]
            csrf_input = format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">',
                                     str(context.get("csrf_token", "")))
            cached = cls(allowed=allowed_verbs(request.user), csrf_input=csrf_input,
                         hidden_inputs=csrf_input + _next_input(request.get_full_path()),
                         now=context.get("now") or timezone.now())
            context.render_context[cls] = cached
        return cached

    def job_url(self, name: str, pk) -> str:
        """reverse(name, args=[pk]) for the job URLs, which take exactly one UUID. reverse() costs
        ~50 us and a row has up to three: reverse once per name with a placeholder, splice ids in."""
        if name not in self.url_patterns:
            before, _, after = reverse(name, args=[PLACEHOLDER]).partition(PLACEHOLDER)
            self.url_patterns[name] = (before, after)
        before, after = self.url_patterns[name]
        return f"{before}{pk}{after}"


def _next_input(path: str) -> SafeString:
    return format_html('<input type="hidden" name="next" value="{}">', path)


def _when(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S")


def _clip(text: str, length: int) -> str:
    """Django's `truncatechars`: at most `length` characters, the last one '…' if cut."""
    return text if len(text) <= length else text[:length - 1] + "…"


def status_badge(record: BackgroundTaskRecord, now: datetime) -> SafeString:
    """The coloured state: 'scheduled' for a pending job not yet due, 'stopping' for a cancel in flight."""
    if record.status == Status.PENDING and record.scheduled_for and record.scheduled_for > now:
        return format_html('<span class="badge s-scheduled" title="scheduled for {} UTC">scheduled</span>',
                           _when(record.scheduled_for))
    if record.status == Status.RUNNING and record.cancel_requested_at:
        return mark_safe('<span class="badge s-running" title="cancel requested">stopping</span>')
    return format_html('<span class="badge s-{}">{}</span>', record.status, record.status)


def _action(url: str, target: str, hidden: SafeString, label: str, css: str,
            confirm: str = "", asked: SafeString | str = "") -> SafeString:
    return format_html(
        '<form method="post" action="{}" hx-post="{}" hx-target="{}" hx-swap="outerHTML"{}{}>{}'
        '{}<button class="btn{}">{}</button></form>',
        url, url, target, format_html(' hx-confirm="{}"', confirm) if confirm else "", CONFIRM if confirm else "",
        hidden, asked, css, label)


def _asked(action, record: BackgroundTaskRecord) -> SafeString:
    """The input an action asks for (jobs.actions `asks`): a new time, in the site's time zone."""
    if action.asks != "at":
        return mark_safe("")
    value = timezone.localtime(record.scheduled_for).strftime("%Y-%m-%dT%H:%M") if record.scheduled_for else ""
    return format_html('<input type="datetime-local" name="at" value="{}" required aria-label="new time for job {}">',
                       value, str(record.pk)[:8])


def job_actions(record: BackgroundTaskRecord, rows: RowContext, where: str) -> SafeString:
    """The job actions (jobs.actions) that apply to its state and that the viewer may use;
    `where` is "row" or "detail"."""
    target = f"#job-{record.pk}" if where == "row" else "#job-live"
    forms = []
    for action in JOB_ACTIONS:
        if action.verb not in rows.allowed or not action.applies(record) or (where == "row" and (action.removes or action.asks)):
            continue
        # After a delete the job page is gone: come back to the list.
        hidden = rows.csrf_input + _next_input(reverse("job_list")) if action.removes else rows.hidden_inputs
        question = action.question(f"{str(record.pk)[:8]} ({record.func_name})") if action.confirm else ""
        forms.append(_action(rows.job_url(f"job_{action.verb}", record.pk), target, hidden, action.label,
                             action.style, question, _asked(action, record)))
    if not forms:
        return mark_safe("")
    return format_html('<div class="actions">{}</div>', mark_safe("".join(forms)))


def _note(record: BackgroundTaskRecord) -> SafeString:
    if getattr(record, "waiting_for", ""):  # set by the job list (jobs.stats.waiting_for)
        return format_html('<span class="badge s-waiting" title="at most {} at once">waiting for a slot: {}</span>',
                           record.limit_concurrency, record.waiting_for)
    if record.status == Status.RUNNING:
        if record.progress is not None:
            return format_html('<progress max="1" value="{}"></progress> {} {}', record.progress,
                               percent(record.progress), record.progress_message)
        return format_html('<span class="dim">on {}</span>', record.worker_name)
    if record.error_type:
        return format_html('<span class="err">{}</span> {}', record.error_type,
                           _clip(record.error_message, 90))
    return mark_safe("")


def job_row(record: BackgroundTaskRecord, rows: RowContext) -> SafeString:
    """One `<tr>` of the job table (its id, job-<pk>, is the target of the row's actions)."""
    short = str(record.pk)[:8]
    args = compact_json(record.args)
    pick = format_html(
        '<td class="pick"><input type="checkbox" name="ids" value="{}" form="bulk-form" id="pick-{}" hx-preserve'
        ' aria-label="select job {}"></td>', record.pk, record.pk, short) if "bulk" in rows.allowed else ""
    return format_html(
        '<tr id="job-{}" class="row-{}">{}<td>{}</td>'
        '<td class="mono"><a href="{}" title="{}">{}</a></td>'
        '<td class="mono fn"><span class="dim">{}</span>{}</td>'
        '<td class="mono args" title="{}">{}</td>'
        '<td>{}</td>'
        '<td class="num"><time datetime="{}" title="{} UTC">{}</time></td>'
        '<td class="num" title="retries left: {}">{}</td>'
        '<td class="num">{}</td>'
        '<td class="note">{}</td>'
        '<td>{}</td></tr>\n',
        record.pk, record.status, pick, status_badge(record, rows.now),
        rows.job_url("job_detail", record.pk), record.pk, short,
        func_module(record.func_path), record.func_name,
        _clip(args, 400), _clip(args, 48),
        record.queue_name,
        record.enqueued_at.isoformat(), _when(record.enqueued_at), age(record.enqueued_at),
        record.retries_left, record.attempts,
        ms(run_ms(record)),
        _note(record),
        job_actions(record, rows, "row"))
