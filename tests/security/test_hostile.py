"""Hostile input: random and malformed query strings, ids, paths and form data against every page
and action. Whatever comes in, the answer is a page or a clear 4xx, never a 5xx.

The Hypothesis tests share one database state per test function across their examples (the
function-scoped fixtures are set up once per test, hence the suppressed health check): an
action that changes a row only gives later examples different rows to meet.
"""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote, unquote, urlencode

import pytest
from django.core import signing
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from dashboard import paging
from jobs import api
from jobs.models import AuditEntry, BackgroundTaskRecord, Status

pytestmark = pytest.mark.django_db

EXAMPLES = hsettings(max_examples=50, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Any text a browser could send (surrogates cannot travel in UTF-8, so they are left to the bytes below).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
NASTY = st.sampled_from(["", "\x00", "%00", "%ff", "' OR 1=1 --", "<script>alert(1)</script>", "../../etc/passwd",
                         "9" * 400, "-1", "1e309", "NaN", "[]", "{}", "0000-00-00T00:00:00", "9999-12-31T23:59:59",
                         "0001-01-01T00:00:00", "2024-02-30T10:00:00", "\u202e", "\ufffd", "😀" * 50, "a" * 3000])
VALUE = st.one_of(TEXT, NASTY)
FIELDS = ["state", "queue", "function", "q", "since", "until", "on", "error_type", "worker", "cursor", "window",
          "user", "action", "record", "next", "confirmed", "scope", "ids", "filter", "token"]
QUERY = st.dictionaries(st.one_of(st.sampled_from(FIELDS), TEXT), st.one_of(VALUE, st.lists(VALUE, max_size=3)),
                        max_size=6)
PAGES = ["overview", "job_list", "failure_list", "worker_list", "queue_list", "audit_list", "job_detail"]
HX_TARGETS = st.sampled_from(["", "job-table", "job-live", "audit-table", "queue-charts", "nope", "#<x>"])


def _ok(response, what) -> None:
    assert response.status_code < 500, (what, response.status_code)


@pytest.fixture
def records(make_record, redis_conn):
    rows = [make_record(status) for status in (Status.PENDING, Status.RUNNING, Status.COMPLETED, Status.FAILED,
                                               Status.CANCELLED)]
    AuditEntry.objects.create(username="operator", action="retry", record_id=rows[3].pk, detail={"k": "v"})
    return rows


def _page_url(name: str, records) -> str:
    return reverse(name, args=[records[3].pk]) if name == "job_detail" else reverse(name)


@pytest.mark.parametrize("name", PAGES)
def test_random_query_strings_on_every_page(name, operator, records):
    url = _page_url(name, records)

    @EXAMPLES
    @given(query=QUERY, htmx=st.booleans(), target=HX_TARGETS)
    def check(query, htmx, target):
        headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target} if htmx else {}
        _ok(operator.get(url, query, **headers), (url, query))

    check()


@pytest.mark.parametrize("name", PAGES)
def test_random_bytes_as_query_strings(name, operator, records):
    """Raw bytes, invalid UTF-8 included, exactly as a server would hand them to Django."""
    url = _page_url(name, records)

    @EXAMPLES
    @given(raw=st.binary(max_size=200))
    def check(raw):
        _ok(operator.get(url, QUERY_STRING=raw.decode("latin-1")), (url, raw))

    check()


@pytest.mark.parametrize("action", ["job_retry", "job_cancel", "job_delete"])
def test_random_ids_and_form_data_on_job_actions(action, operator, records):
    ids = st.one_of(st.sampled_from([r.pk for r in records]), st.uuids())

    @EXAMPLES
    @given(pk=ids, data=QUERY, htmx=st.booleans(), target=HX_TARGETS)
    def check(pk, data, htmx, target):
        headers = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target} if htmx else {}
        _ok(operator.post(reverse(action, args=[pk]), data, **headers), (action, pk, data))

    check()


def test_random_bulk_selections_and_their_confirmations(operator, records):
    filters = st.one_of(TEXT, QUERY.map(lambda q: urlencode(q, doseq=True)))
    ids = st.lists(st.one_of(st.sampled_from([str(r.pk) for r in records]), st.uuids().map(str), VALUE), max_size=5)

    @EXAMPLES
    @given(action=st.one_of(st.sampled_from(["retry", "cancel", "delete"]), VALUE),
           scope=st.sampled_from(["", "all", "selected", "both"]), ids=ids, filter=filters, htmx=st.booleans(),
           token=st.one_of(st.none(), VALUE))
    def check(action, scope, ids, filter, htmx, token):
        headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
        data = {"action": action, "scope": scope, "ids": ids, "filter": filter}
        if token is not None:
            data["token"] = token
        response = operator.post(reverse("job_bulk"), data, **headers)
        _ok(response, data)
        sealed = re.search(rb'name="token" value="([^"]+)"', response.content)
        if sealed:  # confirm what was offered
            _ok(operator.post(reverse("job_bulk"), {"token": sealed.group(1).decode()}, **headers), data)

    check()


def test_random_queue_names_and_paths(operator, records):
    @EXAMPLES
    @given(name=st.one_of(TEXT, NASTY), verb=st.sampled_from(["pause", "resume", "nope", ""]),
           method=st.sampled_from(["get", "post"]))
    def check(name, verb, method):
        for url in (f"/queues/{quote(name, safe='')}/{verb}/", f"/jobs/{quote(name, safe='')}/",
                    f"/jobs/{quote(name, safe='')}/retry/", f"/{quote(name)}"):
            _ok(getattr(operator, method)(url), url)

    check()


def test_random_bytes_in_paths(operator, records):
    @EXAMPLES
    @given(raw=st.binary(min_size=1, max_size=60), prefix=st.sampled_from(["/jobs/", "/queues/", "/audit/", "/"]))
    def check(raw, prefix):
        path = prefix + "".join(f"%{b:02X}" for b in raw)  # the test client unquotes to these raw bytes
        _ok(operator.get(path), path)
        _ok(operator.post(path + "/pause/"), path)

    check()


# --- invalid UTF-8, named cases -----------------------------------------------------------------

BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xe2\x28\xa1", b"\xf0\x28\x8c\xbc", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00"]


@pytest.mark.parametrize("bad", BAD_UTF8)
def test_invalid_utf8_in_query_strings_form_posts_and_paths(bad, operator, records):
    escaped = "".join(f"%{b:02X}" for b in bad)
    for name in PAGES:
        url = _page_url(name, records)
        _ok(operator.get(url, QUERY_STRING=f"q={escaped}&function={escaped}&cursor={escaped}&user={escaped}"), url)
        _ok(operator.get(url, QUERY_STRING=("q=" + bad.decode("latin-1"))), url)
    response = operator.get(reverse("job_list"), QUERY_STRING=f"q=a{escaped}b")
    assert response.status_code in (200, 400)
    body = b"action=retry&scope=all&filter=q%3D" + escaped.encode() + b"&next=" + bad
    _ok(operator.post(reverse("job_bulk"), body, content_type="application/x-www-form-urlencoded"), body)
    _ok(operator.post(reverse("job_retry", args=[records[3].pk]), b"next=" + bad + b"&confirmed=" + bad,
                      content_type="application/x-www-form-urlencoded"), bad)
    multipart = (b"--B\r\nContent-Disposition: form-data; name=\"action\"\r\n\r\nretry" + bad
                 + b"\r\n--B\r\nContent-Disposition: form-data; name=\"ids\"\r\n\r\n" + bad + b"\r\n--B--\r\n")
    _ok(operator.post(reverse("job_bulk"), multipart, content_type="multipart/form-data; boundary=B"), bad)
    assert operator.get("/jobs/" + escaped + "/").status_code == 404
    assert operator.post("/queues/" + escaped + "/pause/").status_code == 404


def test_stored_text_that_is_not_clean_unicode_renders(operator, make_record, redis_conn):
    """Rows written by hand or by an older version: control characters, U+FFFD, bidi overrides, and (SQLite
    only: PostgreSQL's jsonb refuses it) a lone surrogate inside JSON."""
    odd = "\ufffd\x1b[31mred\x7f\u202egnp.exe\u0007"
    args = [odd, "x\udcff"] if connection.vendor == "sqlite" else [odd]
    record = make_record(Status.FAILED, args=args, kwargs={odd: odd}, error_message=odd, traceback=odd,
                         error_type="Err\ufffd", progress_message=odd[:50])
    for url in [reverse("job_detail", args=[record.pk]), reverse("job_list"), reverse("failure_list"),
                reverse("overview")]:
        response = operator.get(url)
        assert response.status_code == 200, url
        assert "gnp.exe" in response.content.decode(), url


# --- cursors ------------------------------------------------------------------------------------

def test_tampered_cursors_are_a_clear_400(operator, make_record, settings, redis_conn):
    settings.DASHBOARD_PAGE_SIZE = 2
    for _ in range(3):
        make_record(Status.COMPLETED)
    for i in range(3):
        AuditEntry.objects.create(username="operator", action="retry", detail={"n": i})
    job_cursor, audit_cursor = (unquote(re.search(r'cursor=([^"&]+)', operator.get(reverse(name)).content.decode())
                                        .group(1)) for name in ("job_list", "audit_list"))
    assert operator.get(reverse("job_list"), {"cursor": job_cursor}).status_code == 200
    assert operator.get(reverse("audit_list"), {"cursor": audit_cursor}).status_code == 200

    forged = [
        job_cursor[:-1] + ("A" if job_cursor[-1] != "A" else "B"), job_cursor[:10], job_cursor + "x", "x" * 500,
        job_cursor.replace(":", ";"), "", ":::", "\x00", "%ff",
        signing.dumps(["2024-01-01T00:00:00", "x"], salt="another.salt"),
    ]
    for cursor in forged:
        for name in ("job_list", "audit_list"):
            response = operator.get(reverse(name), {"cursor": cursor})
            if cursor:
                assert response.status_code == 400, (name, cursor)
                assert b"This page link is not valid" in response.content
            else:
                assert response.status_code == 200
    # Genuine cursors of the other list: signed by this site, but the ids do not fit.
    response = operator.get(reverse("job_list"), {"cursor": paging.encode(timezone.now(), 12)})
    assert response.status_code == 400 and b"belongs to another list" in response.content
    assert operator.get(reverse("audit_list"), {"cursor": job_cursor}).status_code == 400
    assert operator.get(reverse("job_list"), {"cursor": audit_cursor}).status_code == 400
    # And with htmx, the fragment says it too.
    response = operator.get(reverse("job_list"), {"cursor": forged[0]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and b"<html" not in response.content and b"not valid" in response.content


# --- oversized and deeply nested --------------------------------------------------------------------

def _nested(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def _enqueue_paths():
    """Every way a job gets in: api.enqueue, api.enqueue_many, the @job shortcut, the Django Tasks backend."""
    from jobs.demo import add

    shortcut = api.job(queue="default")(add)
    task = _task()
    return {
        "enqueue": lambda *a, **k: api.enqueue(add, *a, **k),
        "enqueue_many": lambda *a, **k: api.enqueue_many([api.Call(add, *a, **k)]),
        "job shortcut": lambda *a, **k: shortcut.enqueue(*a, **k),
        "tasks backend": lambda *a, **k: task.enqueue(*a, **k),
    }


def _task():
    """jobs.demo.add as a task of the Django Tasks backend (TASKS["default"] is jobs.tasks_backend.RQBackend)."""
    from jobs.demo import add
    from jobs.tasks_backend import RQTask

    return RQTask(priority=0, func=add, queue_name="default", backend="default", run_after=None, takes_context=False)


@pytest.mark.parametrize("path", ["enqueue", "enqueue_many", "job shortcut", "tasks backend"])
@pytest.mark.parametrize("bad, error, text", [
    ((_nested(100_000),), TypeError, "nested too deeply"),
    (("x" * (1024 * 1024 + 10),), ValueError, "the limit is"),
    ((), ValueError, "the limit is"),  # the same, as keyword arguments
    (("a\x00b",), ValueError, "NUL character"),
    (({"k": ["ok", "x\udcffy"]},), ValueError, "lone surrogate"),
    ((object(),), TypeError, "not JSON-serializable"),
    ((float("nan"),), TypeError, "not JSON-serializable"),
])
def test_bad_arguments_are_refused_cleanly_on_every_enqueue_path(path, bad, error, text, redis_conn, settings):
    kwargs = {} if bad else {f"k{i}": "y" * 1000 for i in range(1100)}
    with pytest.raises(error, match=text):
        _enqueue_paths()[path](*bad, **kwargs)
    assert not BackgroundTaskRecord.objects.exists()


def test_oversized_requests_are_a_clear_400(operator, records):
    too_big = b"q=" + b"x" * (3 * 1024 * 1024)
    response = operator.post(reverse("job_bulk"), too_big, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and b"too large" in response.content
    many = "&".join(f"ids={uuid.uuid4()}" for _ in range(1200)) + "&action=retry"
    response = operator.post(reverse("job_bulk"), many, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and b"too many fields" in response.content
    response = operator.get(reverse("job_list"), {"q": "x" * 5000, "function": "f" * 5000})
    assert response.status_code == 400 and b"Some filters are not valid" in response.content
    assert operator.get(reverse("job_list"), QUERY_STRING="a=1&" * 5000).status_code == 400


def test_deep_and_huge_stored_arguments_render(operator, make_record, redis_conn):
    deep = make_record(Status.COMPLETED, args=[_nested(300)], result=_nested(300))
    huge = make_record(Status.FAILED, args=["x" * 200_000], kwargs={"password": "hunter2", "k": "y" * 100_000})
    listing = operator.get(reverse("job_list"))
    assert listing.status_code == 200 and len(listing.content) < 100_000  # cells and titles are truncated
    for record in (deep, huge):
        response = operator.get(reverse("job_detail", args=[record.pk]))
        assert response.status_code == 200
    assert b"hunter2" not in operator.get(reverse("job_detail", args=[huge.pk])).content


# --- a function path that no longer imports -------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_job_whose_function_is_gone_fails_clearly_and_its_pages_render(operator, drain):
    record = api.enqueue("jobs.demo.renamed_long_ago", 1)
    also = api.enqueue("jobs.no_such_module.func")
    drain()
    record.refresh_from_db()
    assert record.status == Status.FAILED
    detail = operator.get(reverse("job_detail", args=[record.pk])).content.decode()
    assert "renamed_long_ago" in detail and record.error_type in detail
    for url in (reverse("job_list"), reverse("failure_list"), reverse("overview"),
                reverse("job_detail", args=[also.pk]), reverse("job_list") + "?function=jobs.no_such_module.func"):
        response = operator.get(url)
        assert response.status_code == 200, url
    assert "jobs.no_such_module" in operator.get(reverse("failure_list")).content.decode()
    # Retrying it is allowed (the code may be deployed again); it fails the same clear way.
    assert operator.post(reverse("job_retry", args=[record.pk])).status_code == 302
