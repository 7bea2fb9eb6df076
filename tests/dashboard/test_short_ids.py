"""Short ids: the 8 characters every page shows find their job in the search box."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse

from jobs.models import BackgroundTaskRecord
from jobs.models.queries import id_prefix_range

pytestmark = pytest.mark.django_db


def _found(client, q: str) -> set:
    response = client.get(reverse("job_list"), {"q": q})
    assert response.status_code == 200, q
    return {r.pk for r in response.context["page"].rows}


def test_the_short_id_a_page_shows_finds_the_job(reader, make_record):
    record = make_record("failed", id=uuid.UUID("0badc0de-1234-4abc-8def-000000000001"))
    other = make_record("failed", id=uuid.UUID("0badc0df-1234-4abc-8def-000000000002"))
    page = reader.get(reverse("job_detail", args=[record.pk])).content.decode()
    audit_like = reader.get(reverse("overview")).content.decode()
    shown = re.search(r">(0badc0de)<", audit_like + page)  # the 8 characters as the pages print them
    assert shown, "the short id is on the page"
    assert _found(reader, shown.group(1)) == {record.pk}
    assert _found(reader, "0badc0") == {record.pk, other.pk}  # six hex digits: a prefix of both
    assert _found(reader, "0BADC0DE-12") == {record.pk}  # dashes as a UUID has them, any case
    assert _found(reader, "0badc0de123") == {record.pk}  # or none at all
    assert _found(reader, str(other.pk)) == {other.pk}


def test_short_prefixes_and_misplaced_dashes_are_no_ids(reader, make_record):
    make_record("completed", id=uuid.UUID("abcdef12-0000-4000-8000-000000000000"))
    assert _found(reader, "abcde") == set()  # five digits: not an id (and not in any text)
    assert id_prefix_range("abcde") is None
    assert id_prefix_range("abc-def12") is None
    assert id_prefix_range("abcdefzz") is None
    low, high = id_prefix_range("abcdef12-0")
    assert str(low) == "abcdef12-0000-0000-0000-000000000000" and str(high) == "abcdef12-0fff-ffff-ffff-ffffffffffff"


def test_a_hex_word_still_matches_text_too(reader, make_record):
    by_text = make_record("failed", args=["deadbeef-cafe"], id=uuid.UUID("11111111-0000-4000-8000-000000000000"))
    by_id = make_record("failed", id=uuid.UUID("deadbeef-0000-4000-8000-000000000000"))
    assert _found(reader, "deadbeef") == {by_text.pk, by_id.pk}


def test_a_prefix_search_uses_the_primary_key_on_postgresql(make_record):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    record = make_record("failed")
    query = BackgroundTaskRecord.objects.search(str(record.pk)[:8])
    assert list(query) == [record]
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a table of a few rows: ask what it would use at scale
        try:
            plan = query.explain()
        finally:
            cursor.execute("RESET enable_seqscan")
    assert "jobs_backgroundtaskrecord_pkey" in plan and "record_search_trgm" in plan, plan
