"""The dashboard on a phone (390 × 844): no page scrolls sideways, the menu stays on the dark header,
wide tables scroll inside their own box, and the filters stack."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from jobs.models import AuditEntry, Status

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LONG = "jobs.demo." + "very_long_function_name_" * 3


@pytest.fixture
def phone(browser, live_server, operator_user):
    client = Client()
    client.force_login(operator_user)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844},
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}])
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


@pytest.fixture
def site(make_record, make_worker):
    failed = make_record(Status.FAILED, func_path=LONG, args=["x" * 200], error_message="boom " * 40)
    make_record(Status.RUNNING, progress=0.3, progress_message="step 3 of 10 " * 5)
    make_record(Status.COMPLETED, result={"total": "y" * 300})
    AuditEntry.objects.create(username="operator", action="retry", record_id=failed.pk, detail={"n": "z" * 300})
    make_worker("a-worker-with-a-rather-long-name-on-some-host", queues=("default", "high", "low"))
    make_worker("dead-worker", silent=timedelta(minutes=10))
    return failed


def test_no_page_scrolls_sideways_at_390_px(phone, site):
    pages = [reverse(name) for name in ("overview", "job_list", "failure_list", "worker_list", "queue_list",
                                        "audit_list")]
    pages += [reverse("job_detail", args=[site.pk]), reverse("job_list") + "?state=failed"]
    for url in pages:
        phone.goto(url)
        phone.wait_for_load_state("networkidle")
        width = phone.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        wide = phone.evaluate("""[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 391)
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
        assert width[0] <= width[1], f"{url} scrolls sideways: {width} {wide}"
        header = phone.locator("header.top").bounding_box()
        for link in phone.locator("header.top nav a").all():  # the menu wraps inside the dark header
            box = link.bounding_box()
            assert box["y"] >= header["y"] and box["y"] + box["height"] <= header["y"] + header["height"] + 0.5, url
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, url


def test_tables_scroll_in_their_box_and_filters_stack(phone, site):
    phone.goto(reverse("job_list"))
    table = phone.locator("table.grid.jobs")
    inner, outer = table.evaluate("t => [t.scrollWidth, t.clientWidth]")
    assert inner > outer and table.bounding_box()["width"] <= 390
    labels = [phone.locator(".filters label", has_text=text).bounding_box() for text in ("State", "Queue", "Search")]
    assert labels[0]["x"] == labels[1]["x"] == labels[2]["x"] and labels[0]["y"] < labels[1]["y"] < labels[2]["y"]
