"""Masked keyword arguments cannot be found by searching: not prefix by prefix, not by anyone."""

from __future__ import annotations

import pytest
from django.urls import reverse

from jobs.models import BackgroundTaskRecord, Status

pytestmark = pytest.mark.django_db

SECRET = "Zq7-hunter2-XYZZY"


@pytest.fixture
def secret_record(make_record):
    return make_record(Status.FAILED, kwargs={"password": SECRET, "StripeApiKey": "sk_live_" + SECRET,
                                              "customer": "acme-corp", "nested": {"deep": "inner-value"}})


def _found(client, q: str) -> set:
    response = client.get(reverse("job_list"), {"q": q})
    assert response.status_code == 200
    return {r.pk for r in response.context["page"].rows}


@pytest.mark.parametrize("role", ["reader", "operator"])
def test_the_search_never_matches_a_masked_value(request, role, secret_record):
    client = request.getfixturevalue(role)
    for probe in ("Z", "Zq", "Zq7-", "hunter2", SECRET, SECRET.lower(), "sk_live_", "XYZZY"):
        assert secret_record.pk not in _found(client, probe), probe
    # What is shown is still found: other keyword arguments, nested ones, the function, the error.
    assert _found(client, "acme-corp") == {secret_record.pk}
    assert _found(client, "inner-value") == {secret_record.pk}
    assert _found(client, "customer") == {secret_record.pk}
    assert _found(client, "boom") == {secret_record.pk}


def test_a_value_under_an_ordinary_name_is_still_found(reader, make_record):
    record = make_record(Status.COMPLETED, kwargs={"note": SECRET})
    assert _found(reader, "hunter2") == {record.pk}


def test_kwargs_that_are_not_an_object_are_searched_as_they_are(make_record):
    record = make_record(Status.COMPLETED, kwargs=["password", "listed-value"])
    assert list(BackgroundTaskRecord.objects.search("listed-value")) == [record]


def test_the_masked_words_come_from_the_setting(reader, secret_record, settings):
    settings.DASHBOARD_SENSITIVE_KWARGS = ("customer",)
    assert _found(reader, "acme-corp") == set()
    assert _found(reader, "hunter2") == {secret_record.pk}
