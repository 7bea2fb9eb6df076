"""Concurrency limits with RQ's RateLimit: at most n jobs with a key at once; waiting jobs show it."""

from datetime import timedelta

import pytest
from django.urls import reverse
from rq.rate_limit import RateLimitRegistry

from jobs import api, demo, stats
from jobs.connection import get_queue
from jobs.models import BackgroundTaskRecord, Status, TaskAttempt
from jobs.push import push
from tests.conftest import wait_for
from tests.dashboard.conftest import _user, hx

pytestmark = pytest.mark.django_db(transaction=True)


def registry(redis_conn, key="partner-api"):
    return RateLimitRegistry(key, redis_conn)


def test_only_n_jobs_are_queued_the_rest_wait_for_a_slot(redis_conn):
    records = [api.enqueue(demo.add, i, i, limit=("partner-api", 2)) for i in range(5)]
    ids = [str(r.pk) for r in records]
    assert get_queue("default").get_job_ids() == ids[:2]
    # RQ scores the waiting set in whole seconds: within one, ties go by id, not by enqueue order.
    assert set(registry(redis_conn).get_rate_limited_job_ids()) == set(ids[2:])
    assert set(stats.waiting_for(records)) == set(ids[2:])
    assert all(stats.waiting_for(records)[i] == "partner-api" for i in ids[2:])
    record = BackgroundTaskRecord.objects.get(pk=records[0].pk)
    assert (record.limit_key, record.limit_concurrency) == ("partner-api", 2)


def test_a_burst_worker_runs_them_all_as_slots_free_up(redis_conn, drain):
    records = [api.enqueue(demo.add, i, 1, limit=("partner-api", 2)) for i in range(5)]
    other = api.enqueue(demo.add, 0, 0)
    drain()
    assert all(BackgroundTaskRecord.objects.get(pk=r.pk).status == Status.COMPLETED for r in [*records, other])
    assert registry(redis_conn).get_rate_limited_job_count() == 0


def test_real_workers_never_run_more_than_the_limit_at_once(redis_conn, start_worker):
    records = [api.enqueue(demo.sleep, 0.5, limit=("partner-api", 2)) for _ in range(6)]
    workers = [start_worker("default") for _ in range(3)]
    try:
        wait_for(lambda: BackgroundTaskRecord.objects.filter(status=Status.COMPLETED).count() == 6, timeout=60,
                 message="all six limited jobs completed")
    finally:
        for worker in workers:
            worker.stop()
    # From the recorded attempts: how many ran at the same moment, at most.
    spans = [(a.started_at, a.finished_at) for a in TaskAttempt.objects.filter(record__in=records)]
    assert len(spans) == 6
    overlap = max(sum(1 for s, f in spans if s <= start < f) for start, _ in spans)
    assert overlap <= 2


def test_a_second_push_of_a_limited_job_adds_nothing(redis_conn):
    records = [api.enqueue(demo.add, i, i, limit=("k", 1)) for i in range(2)]
    for record in records:
        assert push(record)  # the repair path: the job exists already, left alone
    assert get_queue("default").get_job_ids() == [str(records[0].pk)]
    assert registry(redis_conn, "k").get_rate_limited_job_ids() == [str(records[1].pk)]
    assert registry(redis_conn, "k").get_allowed_job_ids() == [str(records[0].pk)]


def test_cancelling_a_waiting_job_takes_it_out_of_the_line(redis_conn):
    _holder, waiting = (api.enqueue(demo.add, i, i, limit=("k", 1)) for i in range(2))
    assert api.cancel(waiting) == "cancelled"
    assert registry(redis_conn, "k").get_rate_limited_job_count() == 0
    assert BackgroundTaskRecord.objects.get(pk=waiting.pk).status == Status.CANCELLED


def test_a_delayed_limited_job_run_now_goes_through_its_limit(redis_conn, django_user_model):
    holder = api.enqueue(demo.add, 1, 1, limit=("k", 1))
    later = api.enqueue(demo.add, 2, 2, limit=("k", 1), delay=3600)
    api.run_now(later, None)
    assert get_queue("default").get_job_ids() == [str(holder.pk)]
    assert registry(redis_conn, "k").get_rate_limited_job_ids() == [str(later.pk)]


@pytest.mark.parametrize("limit, error", [("partner-api", TypeError), (("k",), TypeError), (("", 2), ValueError),
                                          (("k", 0), ValueError), (("k", True), ValueError),
                                          (("k" * 101, 1), ValueError)])
def test_a_bad_limit_is_refused_before_anything_is_written(redis_conn, limit, error):
    with pytest.raises(error, match="limit"):
        api.enqueue(demo.add, 1, 2, limit=limit)
    assert not BackgroundTaskRecord.objects.exists()


# --- pages -------------------------------------------------------------------------------

@pytest.fixture
def limited(redis_conn):
    return [api.enqueue(demo.add, i, i, limit=("partner-api", 1)) for i in range(3)]


def test_the_queues_page_lists_each_key_with_its_jobs(admin_client, limited):
    body = admin_client.get(reverse("queue_list")).content.decode()
    section = body[body.index('id="limits"'):]
    assert "partner-api" in section
    for record in limited:
        assert reverse("job_detail", args=[record.pk]) in section
    fragment = admin_client.get(reverse("queue_list"), **hx("queue-table"))
    assert fragment.status_code == 200 and "<html" not in fragment.content.decode()
    assert "partner-api" in fragment.content.decode()


def test_the_queues_page_without_limits_says_so(admin_client, redis_conn):
    assert b"No concurrency limits in use" in admin_client.get(reverse("queue_list")).content


def test_waiting_jobs_say_so_on_the_list_and_their_page(admin_client, limited):
    body = admin_client.get(reverse("job_list")).content.decode()
    assert body.count("waiting for a slot: partner-api") == 2
    page = admin_client.get(reverse("job_detail", args=[limited[2].pk])).content.decode()
    assert 'id="job-waiting"' in page and "partner-api" in page and "at most 1 at once" in page
    page = admin_client.get(reverse("job_detail", args=[limited[0].pk])).content.decode()
    assert 'id="job-waiting"' not in page


def test_the_queues_page_anonymous_and_without_permission(client, django_user_model, limited):
    response = client.get(reverse("queue_list"))
    assert response.status_code == 302 and "login" in response["Location"]
    client.force_login(_user(django_user_model, "nobody"))
    assert client.get(reverse("queue_list")).status_code == 403


def test_unreachable_redis_shows_no_limits_rather_than_failing(settings, db):
    from tests.conftest import use_redis

    use_redis("redis://127.0.0.1:1/0")
    try:
        assert stats.limits() == []
        assert stats.waiting_for([BackgroundTaskRecord(limit_key="k", limit_concurrency=1)]) == {}
    finally:
        import os

        use_redis(os.environ["REDIS_URL"])


def test_delay_does_not_bypass_the_limit(redis_conn, drain):
    holder = api.enqueue(demo.add, 1, 1, limit=("k", 1))
    later = api.enqueue(demo.add, 2, 2, limit=("k", 1), delay=timedelta(seconds=3600))
    assert str(later.pk) in get_queue("default").scheduled_job_registry.get_job_ids()
    drain()
    assert BackgroundTaskRecord.objects.get(pk=holder.pk).status == Status.COMPLETED
    assert BackgroundTaskRecord.objects.get(pk=later.pk).status == Status.PENDING
