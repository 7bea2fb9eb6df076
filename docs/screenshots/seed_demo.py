"""Demo data for the screenshots: a day of queue samples and an hour of finished jobs
(written directly, back-dated), plus real jobs through jobs.api for the live parts.

    JOBDECK_VAR_DIR=/tmp/dash-site REDIS_URL=redis://127.0.0.1:6391/0 .venv/bin/python docs/screenshots/seed_demo.py
"""

import math
import os
import random
import sys
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

import django  # noqa: E402

django.setup()

from django.utils import timezone  # noqa: E402

from dashboard.demo import create_demo_users  # noqa: E402
from jobs import api, demo  # noqa: E402
from jobs.models import AuditEntry, BackgroundTaskRecord, QueueSample, Status, TaskAttempt  # noqa: E402

random.seed(7)
now = timezone.now().replace(second=0, microsecond=0)
create_demo_users()

# A day of per-minute samples: a daily swell, a failure burst an hour ago on "low".
samples = []
for minute in range(1, 24 * 60):
    at = now - timedelta(minutes=minute)
    wave = 1 + math.sin((at.hour * 60 + at.minute) / 1440 * 2 * math.pi - 1.2)
    for queue, scale in (("high", 0.6), ("default", 1.6), ("low", 1.0)):
        done = max(0, int(random.gauss(9 * scale * wave, 2)))
        burst = queue == "low" and 55 < minute < 75
        samples.append(QueueSample(
            taken_at=at, queue_name=queue, pending=max(0, int(random.gauss(14 * scale * wave, 4))) + (40 if burst else 0),
            scheduled=random.randint(0, 3), running=random.randint(0, 2), failed=random.randint(3, 9),
            completed_count=done, failed_count=random.randint(3, 8) if burst else int(random.random() < 0.15),
            latency_ms=int(random.uniform(200, 3000) * wave)))
QueueSample.objects.bulk_create(samples, batch_size=2000)

# An hour of finished jobs, back-dated, so the overview's per-minute chart has history.
functions = [("reports.build_invoice", "default"), ("mail.send_receipt", "high"), ("sync.pull_orders", "low"),
             ("search.reindex_product", "default"), ("media.make_thumbnail", "low")]
TRACE = '''Traceback (most recent call last):
  File "/srv/app/.venv/lib/python3.11/site-packages/rq/job.py", line 1418, in _execute
    result = self.func(*self.args, **self.kwargs)
  File "/srv/app/sync/tasks.py", line 88, in pull_orders
    page = client.orders(since=cursor, limit=200)
  File "/srv/app/sync/client.py", line 41, in orders
    response.raise_for_status()
  File "/srv/app/.venv/lib/python3.11/site-packages/requests/models.py", line 1024, in raise_for_status
    raise HTTPError(http_error_msg, response=self)
requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: https://shop.example/api/orders?since=<cursor>'''
records, attempts = [], []
for i in range(900):
    func, queue = random.choice(functions)
    finished = now - timedelta(seconds=random.uniform(30, 3600))
    started = finished - timedelta(milliseconds=random.uniform(40, 4000))
    failed = random.random() < (0.25 if func == "sync.pull_orders" else 0.03)
    record = BackgroundTaskRecord(
        func_path=func, args=[random.randint(1000, 9999)], kwargs={"tenant": random.choice(["acme", "globex"])},
        queue_name=queue, status=Status.FAILED if failed else Status.COMPLETED,
        enqueued_at=started - timedelta(milliseconds=random.uniform(5, 900)), pushed_at=started, started_at=started,
        finished_at=finished, duration_ms=int((finished - started).total_seconds() * 1000), attempts=1,
        worker_name=f"worker-{random.choice(['a', 'b'])}.{random.randint(100, 999)}", hostname="app-1", pid=4100 + i % 7,
        result=None if failed else {"ok": True}, progress=None if failed else 1.0,
        error_type="HTTPError" if failed and func == "sync.pull_orders" else ("KeyError" if failed else ""),
        error_message=("503 Server Error: Service Unavailable" if func == "sync.pull_orders" else "'sku'") if failed else "",
        traceback=TRACE if failed and func == "sync.pull_orders" else (
            "Traceback (most recent call last):\n  File \"/srv/app/search/tasks.py\", line 12, in reindex\n"
            "    doc[\"sku\"]\nKeyError: 'sku'" if failed else ""))
    records.append(record)
BackgroundTaskRecord.objects.bulk_create(records, batch_size=500)
for record in records:
    attempts.append(TaskAttempt(record=record, number=1, started_at=record.started_at, finished_at=record.finished_at,
                                worker_name=record.worker_name, hostname="app-1", pid=record.pid,
                                outcome=record.status, error_type=record.error_type,
                                error_message=record.error_message, traceback=record.traceback))
TaskAttempt.objects.bulk_create(attempts, batch_size=500)
for record in random.sample([r for r in records if r.status == Status.FAILED], 3):
    AuditEntry.objects.create(username="ops", action="retry", record_id=record.pk, created_at=now - timedelta(minutes=5))
AuditEntry.objects.create(username="ops", action="bulk-retry", detail={"succeeded": 12, "skipped": {}},
                          created_at=now - timedelta(minutes=4))
AuditEntry.objects.create(username="ops", action="pause", detail={"queue": "low"}, created_at=now - timedelta(minutes=30))
AuditEntry.objects.create(username="ops", action="resume", detail={"queue": "low"}, created_at=now - timedelta(minutes=20))

# Live jobs through the real path: a worker serves high and default; low has none (a warning).
for i in range(6):
    api.enqueue(demo.add, i, i * 2, queue="high")
api.enqueue(demo.long_report, steps=600, step_seconds=1.0, timeout=900)
api.enqueue(demo.fail, "card declined: insufficient funds", queue="high")
api.enqueue(demo.fail, "upstream timeout", retries=2, retry_intervals=[30, 60])
api.enqueue(demo.echo, "invoice", 1042, customer={"id": 7, "name": "ACME"}, api_token="s3cr3t")
for _ in range(14):
    api.enqueue(demo.flaky, 0.3, queue="low")
api.enqueue(demo.add, 40, 2, delay=3600)
print("seeded", BackgroundTaskRecord.objects.count(), "records,", QueueSample.objects.count(), "samples")
