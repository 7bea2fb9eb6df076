"""Retry policies: exponential backoff with jitter, retry_on/discard_on, the on-exhausted hook (the dead letter)."""

import logging

import pytest
from django.urls import reverse
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from jobs import api, demo, retry_policy
from jobs.connection import get_queue
from jobs.models import BackgroundTaskRecord, Status, intents

pytestmark = pytest.mark.django_db(transaction=True)

EXHAUSTED: list = []


def note_exhausted(record):
    """An on-exhausted hook for the tests: it runs in the draining worker's process."""
    EXHAUSTED.append((record.pk, record.status, record.attempts))


def broken_hook(record):
    raise RuntimeError("the hook itself fails")


@pytest.fixture(autouse=True)
def _clear_hook_calls():
    EXHAUSTED.clear()
    yield
    EXHAUSTED.clear()


def due_now(record):
    """Move a retry RQ scheduled into its queue at once (what the scheduler does when it is due)."""
    queue = get_queue(record.queue_name)
    job = Job.fetch(str(record.pk), connection=queue.connection)
    ScheduledJobRegistry(queue=queue).remove(job)
    queue._enqueue_job(job)


def scheduled_in(redis_conn, record) -> float:
    """Seconds from the row's last failure to the time RQ scheduled the next attempt for."""
    registry = ScheduledJobRegistry(queue=get_queue(record.queue_name))
    at = registry.get_scheduled_time(str(record.pk))
    last = record.attempt_set.order_by("-number").first()
    return (at - last.finished_at).total_seconds()


# --- the policy itself ----------------------------------------------------------------

def test_the_nth_retry_waits_base_times_factor_to_the_n_minus_1_capped_at_max():
    policy = retry_policy.build("exponential", base=2, factor=3, maximum=100, jitter=0)
    assert [retry_policy.interval(policy, n) for n in (1, 2, 3, 4, 5)] == [2, 6, 18, 54, 100]


def test_jitter_adds_up_to_its_fraction_of_the_wait():
    policy = retry_policy.build("exponential", base=10, factor=2, maximum=3600, jitter=0.5)
    assert retry_policy.interval(policy, 2, rand=lambda: 0.0) == 20
    assert retry_policy.interval(policy, 2, rand=lambda: 1.0) == 30
    assert 20 <= retry_policy.interval(policy, 2) <= 30


def test_the_defaults_come_from_settings_and_each_is_overridable(settings):
    settings.JOBS_BACKOFF_BASE_SECONDS = 5
    settings.JOBS_BACKOFF_FACTOR = 4
    settings.JOBS_BACKOFF_MAX_SECONDS = 50
    settings.JOBS_BACKOFF_JITTER = 0.25
    assert retry_policy.build("exponential") == {"backoff": "exponential", "base": 5, "factor": 4, "max": 50,
                                                 "jitter": 0.25}
    assert retry_policy.build("exponential", base=1, jitter=0)["base"] == 1
    record = api.enqueue(demo.add, 1, 2, retries=3, backoff="exponential", backoff_factor=3, backoff_max=7)
    record.refresh_from_db()
    assert record.retry_policy == {"backoff": "exponential", "base": 5, "factor": 3, "max": 7, "jitter": 0.25}


@pytest.mark.parametrize("options, error, words", [
    ({"backoff": "linear"}, ValueError, "backoff must be one of"),
    ({"backoff_base": 3}, ValueError, 'need backoff="exponential"'),
    ({"backoff": "exponential", "backoff_factor": 0.5}, ValueError, "backoff_factor must be"),
    ({"backoff": "exponential", "backoff_max": float("nan")}, ValueError, "backoff_max must be"),
    ({"backoff": "exponential", "backoff_jitter": -1}, ValueError, "backoff_jitter must be"),
    ({"backoff": "exponential", "backoff_base": "2"}, TypeError, "backoff_base must be a number"),
    ({"retry_on": (42,)}, TypeError, "retry_on takes exception classes"),
    ({"discard_on": 7}, TypeError, "discard_on must be"),
    ({"on_exhausted": "not a path"}, TypeError, "dotted path"),
])
def test_a_bad_policy_is_refused_before_anything_is_written(redis_conn, options, error, words):
    with pytest.raises(error, match=words):
        api.enqueue(demo.add, 1, 2, retries=1, **options)
    assert not BackgroundTaskRecord.objects.exists()


def test_exception_filters_are_stored_as_dotted_paths(redis_conn):
    record = api.enqueue(demo.fail, retries=2, retry_on=(ConnectionError, "myapp.errors.Flaky"),
                         discard_on=ValueError)
    record.refresh_from_db()
    assert record.retry_policy == {"retry_on": ["builtins.ConnectionError", "myapp.errors.Flaky"],
                                   "discard_on": ["builtins.ValueError"]}


# --- with a real worker ------------------------------------------------------------

def test_exponential_backoff_schedules_each_retry_further_out(redis_conn, drain):
    record = api.enqueue(demo.fail, "x", retries=3, backoff="exponential", backoff_base=40, backoff_factor=3,
                         backoff_jitter=0)
    drain()
    record.refresh_from_db()
    assert record.status == Status.PENDING and record.scheduled_for is not None
    assert scheduled_in(redis_conn, record) == pytest.approx(40, abs=2)
    due_now(record)
    drain()
    record.refresh_from_db()
    assert record.status == Status.PENDING and record.attempts == 2
    assert scheduled_in(redis_conn, record) == pytest.approx(120, abs=2)
    # The row's next time is the one RQ holds.
    at = ScheduledJobRegistry(queue=get_queue("default")).get_scheduled_time(str(record.pk))
    assert abs((record.scheduled_for - at).total_seconds()) < 2


def test_retry_intervals_keep_working_without_a_policy(redis_conn, drain):
    record = api.enqueue(demo.fail, "x", retries=2, retry_intervals=[300, 600])
    drain()
    record.refresh_from_db()
    assert record.retry_policy is None and record.status == Status.PENDING
    assert scheduled_in(redis_conn, record) == pytest.approx(300, abs=2)


def test_a_discarded_exception_fails_at_once_with_its_reason(redis_conn, drain):
    record = api.enqueue(demo.fail, "bad input", retries=3, discard_on=(ValueError,))
    drain()
    record.refresh_from_db()
    assert record.status == Status.FAILED and record.attempts == 1
    assert record.error_type == "ValueError"
    assert "bad input" in record.error_message and "discarded: ValueError is in discard_on" in record.error_message


def test_retry_on_retries_only_those_exceptions(redis_conn, drain):
    retried = api.enqueue(demo.flaky, 1.0, retries=2, retry_intervals=[600], retry_on=(ConnectionError,))
    discarded = api.enqueue(demo.fail, "no", retries=2, retry_intervals=[600], retry_on=(ConnectionError,))
    drain()
    retried.refresh_from_db()
    discarded.refresh_from_db()
    assert retried.status == Status.PENDING and retried.scheduled_for is not None
    assert discarded.status == Status.FAILED and discarded.attempts == 1
    assert "not in retry_on (builtins.ConnectionError)" in discarded.error_message


def test_the_on_exhausted_hook_runs_once_after_the_last_attempt(redis_conn, drain):
    path = f"{__name__}.note_exhausted"
    record = api.enqueue(demo.fail, "x", retries=2, on_exhausted=path)
    ok = api.enqueue(demo.add, 1, 2, on_exhausted=path)
    drain()
    record.refresh_from_db()
    assert record.status == Status.FAILED and record.attempts == 3
    assert EXHAUSTED == [(record.pk, Status.FAILED, 3)]
    assert BackgroundTaskRecord.objects.get(pk=ok.pk).status == Status.COMPLETED


def test_a_discarded_job_goes_to_the_dead_letter_too(redis_conn, drain):
    record = api.enqueue(demo.fail, "x", retries=5, discard_on=(ValueError,),
                         on_exhausted=f"{__name__}.note_exhausted")
    drain()
    assert EXHAUSTED == [(record.pk, Status.FAILED, 1)]


def test_a_hook_that_raises_is_logged_and_breaks_neither_row_nor_worker(redis_conn, drain, caplog):
    broken = api.enqueue(demo.fail, "x", on_exhausted=f"{__name__}.broken_hook")
    after = api.enqueue(demo.add, 2, 3)
    with caplog.at_level(logging.ERROR, logger="jobs.retry_policy"):
        drain()
    assert BackgroundTaskRecord.objects.get(pk=broken.pk).status == Status.FAILED
    assert BackgroundTaskRecord.objects.get(pk=after.pk).status == Status.COMPLETED
    assert "on_exhausted hook" in caplog.text and "the hook itself fails" in caplog.text


def test_the_hook_is_tied_to_the_transition_not_to_the_write(redis_conn, drain):
    """A repeated final-failure write (a retried write, the writer's fallback) does not call it again."""
    record = api.enqueue(demo.sleep, 0, on_exhausted=f"{__name__}.note_exhausted")
    record.mark_running(execution_id="e1", worker_name="w", hostname="h", pid=1)
    job = Job.fetch(str(record.pk), connection=redis_conn)

    def final_write():
        base = intents.Fail(record.pk, "e1", error_type="ValueError", error_message="x")
        return retry_policy.with_hook(base, job)

    first = final_write()
    assert isinstance(first, retry_policy.ExhaustedFail)
    assert first.apply() is True
    assert final_write().apply() is False  # the row is failed already: late, no second call
    assert final_write().apply_orm() is False
    assert [pk for pk, _, _ in EXHAUSTED] == [record.pk]


# --- the job page -------------------------------------------------------------------

def test_the_job_page_shows_the_policy_and_the_next_attempt(redis_conn, drain, admin_client):
    record = api.enqueue(demo.fail, "x", retries=3, backoff="exponential", backoff_base=60, backoff_jitter=0,
                         discard_on=(KeyError,), on_exhausted=f"{__name__}.note_exhausted")
    drain()
    record.refresh_from_db()
    page = admin_client.get(reverse("job_detail", args=[record.pk])).content.decode()
    assert "Next attempt" in page and record.scheduled_for.strftime("%Y-%m-%d %H:%M:%S") in page
    assert "exponential: 60 s × 2^(n-1), at most 3600 s" in page
    assert "builtins.KeyError" in page and f"{__name__}.note_exhausted" in page
