"""The job page shows what a job depends on, its dependents and its group, with links that work."""

import datetime as dt
import re

import django_rq
import pytest
from django.urls import reverse
from rq import Queue
from rq.group import Group
from rq.job import Dependency

from jobs import demo
from jobs.adopt import record_id_for
from jobs.models import BackgroundTaskRecord, Status

from .conftest import HX

pytestmark = pytest.mark.django_db(transaction=True)


def page_of(client, rq_id: str, **headers) -> str:
    response = client.get(reverse("job_detail", args=[record_id_for(rq_id)]), **headers)
    assert response.status_code == 200
    return response.content.decode()


def hrefs(html: str, region_id: str) -> list[str]:
    """The links inside the element with this id, as the page renders them."""
    region = re.search(rf'<(\w+)[^>]*id="{region_id}"[^>]*>(.*?)</\1>', html, re.DOTALL)
    assert region, region_id
    return re.findall(r'href="([^"]+)"', region.group(2))


def test_a_dependent_waits_on_its_parent_then_is_released(reader, drain, redis_conn):
    queue = django_rq.get_queue("default")
    parent = queue.enqueue_in(dt.timedelta(hours=1), demo.add, 1, 1, job_id="parent-1")
    child = queue.enqueue(demo.add, 2, 2, depends_on=parent)
    html = page_of(reader, child.id)
    assert "waiting on" in html and "parent-1" in html
    (link,) = hrefs(html, "waiting-on")
    assert reader.get(link).status_code == 200 and "parent-1" in reader.get(link).content.decode()
    assert hrefs(html, "depends-on") == [link]
    parent_page = page_of(reader, "parent-1")
    assert hrefs(parent_page, "dependents") == [reverse("job_detail", args=[record_id_for(child.id)])]

    queue.scheduled_job_registry.remove(parent)
    queue.enqueue_job(parent)  # due now: the worker runs the parent, RQ releases the child
    drain("default")
    html = page_of(reader, child.id)
    assert BackgroundTaskRecord.objects.get(pk=record_id_for(child.id)).status == Status.COMPLETED
    assert 'id="waiting-on"' not in html and 'id="depends-on"' in html


def test_a_released_dependent_is_pending_without_waiting(reader, redis_conn):
    queue = Queue("default", connection=redis_conn)
    parent = django_rq.get_queue("default").enqueue(demo.add, 1, 1)
    child = django_rq.get_queue("default").enqueue(demo.add, 1, 2, depends_on=parent)
    BackgroundTaskRecord.objects.filter(pk=record_id_for(parent.id)).update(status=Status.COMPLETED)
    html = page_of(reader, child.id)
    assert 'id="waiting-on"' not in html and "pending" in html
    assert queue.name == "default"


def test_group_members_link_to_each_other(reader, redis_conn):
    queue = django_rq.get_queue("default")
    jobs = Group.create(connection=redis_conn, name="batch7").enqueue_many(
        queue, [Queue.prepare_data(demo.add, (n, n)) for n in range(3)])
    html = page_of(reader, jobs[0].id)
    assert "batch7" in html
    assert sorted(hrefs(html, "group")) == sorted(reverse("job_detail", args=[record_id_for(j.id)]) for j in jobs[1:])


def test_a_parent_without_a_row_is_named_not_linked(reader, redis_conn):
    Queue("default", connection=redis_conn).enqueue(demo.noop, job_id="foreign-parent")
    child = django_rq.get_queue("default").enqueue(demo.noop, depends_on="foreign-parent")
    html = page_of(reader, child.id)
    assert "foreign-parent" in html and "(no row)" in html and hrefs(html, "depends-on") == []


def test_the_htmx_fragment_carries_the_relations(reader, redis_conn):
    queue = django_rq.get_queue("default")
    parent = queue.enqueue_in(dt.timedelta(hours=1), demo.noop, job_id="p-frag")
    child = queue.enqueue(demo.noop, depends_on=parent)
    html = page_of(reader, child.id, **HX)
    assert "<html" not in html and 'id="waiting-on"' in html and "p-frag" in html


def test_the_page_with_relations_needs_a_login_and_the_view_permission(client, staff_user, redis_conn):
    child = django_rq.get_queue("default").enqueue(demo.noop, job_id="guarded-1")
    url = reverse("job_detail", args=[record_id_for(child.id)])
    response = client.get(url)
    assert response.status_code == 302 and "login" in response["Location"]
    client.force_login(staff_user)
    assert client.get(url).status_code == 403


def test_a_custom_id_job_is_found_by_the_search_and_its_page_shows_the_rq_id(reader, redis_conn):
    django_rq.get_queue("default").enqueue(demo.add, 1, 1, job_id="report-2026-12")
    html = reader.get(reverse("job_list"), {"q": "report-2026-12"}).content.decode()
    link = reverse("job_detail", args=[record_id_for("report-2026-12")])
    assert link in html
    page = reader.get(link).content.decode()
    assert "RQ id" in page and "report-2026-12" in page


def test_a_dependent_that_allows_a_failed_parent_is_released_not_waiting(reader, drain, redis_conn):
    queue = django_rq.get_queue("default")
    parent = queue.enqueue(demo.fail, "parent fails")
    child = queue.enqueue_call(demo.noop, depends_on=Dependency(jobs=[parent], allow_failure=True),
                               job_id="tolerant-child")
    assert 'id="waiting-on"' in page_of(reader, "tolerant-child")
    drain("default")
    html = page_of(reader, "tolerant-child")
    assert 'id="waiting-on"' not in html and 'id="depends-on"' in html
    assert BackgroundTaskRecord.objects.get(pk=record_id_for(child.id)).status == Status.COMPLETED


def test_a_dependent_whose_parent_failed_stays_waiting_on_it(reader, drain):
    queue = django_rq.get_queue("default")
    parent = queue.enqueue(demo.fail, "parent fails", job_id="failing-parent")
    queue.enqueue(demo.noop, depends_on=parent, job_id="stuck-child")
    drain("default")
    html = page_of(reader, "stuck-child")
    assert 'id="waiting-on"' in html and "failing-parent" in html and "failed" in html
