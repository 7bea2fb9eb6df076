"""Workers and work horses SIGKILLed in the middle of a 1,000-job run."""

from __future__ import annotations

import os
import signal
import time

import pytest

from .rig import RECONCILE_EVERY, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.slow]

JOBS = 1000
KILLS = 5
FIRST_KILL_AFTER = 4.0
BETWEEN_KILLS = 6.0
SETTLE_LIMIT = 60.0


class Settling:
    """Attempts hit by a kill, and how long each took to leave `running`."""

    def __init__(self, rig):
        self.rig = rig
        self.open: dict[tuple[str, str], float] = {}
        self.took: dict[tuple[str, str], float] = {}
        self.killed_ids: set[str] = set()

    def add(self, rows, killed_at: float) -> None:
        for row in rows:
            self.open[(str(row["id"]), row["execution_id"])] = killed_at
            self.killed_ids.add(str(row["id"]))

    def poll(self) -> None:
        if not self.open:
            return
        ids = [key[0] for key in self.open]
        now = {str(r["id"]): r for r in self.rig.rows(
            "SELECT id, status, execution_id FROM jobs_backgroundtaskrecord WHERE id = ANY(%s::uuid[])", ids)}
        for key, killed_at in list(self.open.items()):
            row = now.get(key[0])
            if row is None or row["status"] != "running" or row["execution_id"] != key[1]:
                self.took[key] = time.monotonic() - killed_at
                del self.open[key]

    def wait(self, seconds: float) -> None:
        """Sleep `seconds`, noting settlements meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()
            time.sleep(0.25)


def running_victim(rig, live_names: set[str]) -> dict | None:
    """A running attempt on a live worker, a slow one if possible (a kill mid-run, not at its edge)."""
    rows = rig.rows(
        "SELECT id, execution_id, worker_name, pid, args FROM jobs_backgroundtaskrecord "
        "WHERE status = 'running' AND worker_name = ANY(%s) ORDER BY (args = '[2.0]'::jsonb) DESC, started_at",
        sorted(live_names))
    return rows[0] if rows else None


def test_workers_and_horses_killed_mid_run_lose_nothing_and_run_nothing_twice(rig):
    started = time.monotonic()
    kinds = rig.drive("enqueue_mix", count=JOBS)
    assert sum(kinds.values()) == JOBS
    workers = {w.name: w for w in (rig.start_worker(), rig.start_worker())}
    rig.start_reconciler()
    settling = Settling(rig)
    kills = {"horse": 0, "worker": 0}

    settling.wait(FIRST_KILL_AFTER)
    for number in range(KILLS):
        kind = "horse" if number % 2 == 0 else "worker"
        victim = wait_until(lambda: running_victim(rig, set(workers)), timeout=30, interval=0.1,
                            message="a running job to kill")
        worker = workers[victim["worker_name"]]
        if kind == "horse":
            pid = victim["pid"]
            if pid in worker.session_pids() and pid != worker.pid:
                killed_at = time.monotonic()
                os.kill(pid, signal.SIGKILL)  # as the OOM killer would
                settling.add([victim], killed_at)
                kills["horse"] += 1
            else:  # that job ended meanwhile: take the whole worker instead
                kind = "worker"
        if kind == "worker":
            killed_at = time.monotonic()
            worker.kill_group()  # worker and horse at once: a host lost
            settling.add(rig.rows("SELECT id, execution_id FROM jobs_backgroundtaskrecord "
                                  "WHERE status = 'running' AND worker_name = %s", worker.name), killed_at)
            kills["worker"] += 1
            del workers[worker.name]
            replacement = rig.start_worker()
            workers[replacement.name] = replacement
        settling.wait(BETWEEN_KILLS)

    # Everything ends: the kills settle within the limit and the rest of the run drains.
    wait_until(lambda: (settling.poll(), rig.active_count() == 0)[1], timeout=240, interval=0.5,
               message=lambda: f"all jobs to end (left: {rig.status_counts()})")
    settling.poll()
    total = time.monotonic() - started

    counts = rig.status_counts()
    ended = counts.get("completed", 0) + counts.get("failed", 0)
    no_reason = rig.value("SELECT count(*) FROM jobs_backgroundtaskrecord WHERE status = 'failed' "
                          "AND (error_type = '' OR error_message = '')")
    over = rig.over_runs()
    ran = rig.executions()
    rows = rig.rows("SELECT r.id, r.status, r.attempts, r.max_retries, r.interruptions, count(a.id) AS attempt_rows, "
                    "count(a.id) FILTER (WHERE a.outcome = 'running') AS open_attempts "
                    "FROM jobs_backgroundtaskrecord r LEFT JOIN jobs_taskattempt a ON a.record_id = r.id "
                    "GROUP BY r.id")
    worst = max(settling.took.values(), default=0.0)
    print(f"\nworkers killed: killed {sum(kills.values())} times ({kills['horse']} work horses, "
          f"{kills['worker']} whole workers); {ended}/{JOBS} ended ({counts.get('completed', 0)} completed, "
          f"{counts.get('failed', 0)} failed with a reason); {JOBS - len(rows)} lost; {len(over)} over-run; "
          f"{len(settling.took)} killed attempts settled, worst settle {worst:.1f} s "
          f"(reconcile every {RECONCILE_EVERY} s); run {total:.0f} s")

    assert sum(kills.values()) == KILLS and kills["worker"] >= 1
    assert not settling.open, f"killed attempts still running: {settling.open}"
    assert worst < SETTLE_LIMIT
    assert len(rows) == JOBS, "a row disappeared"
    assert ended == JOBS, counts
    assert no_reason == 0
    assert over == [], f"ran more often than their attempts say: {over[:10]}"
    assert [r for r in rows if r["attempt_rows"] != r["attempts"] or r["open_attempts"]] == []
    # At-least-once: an attempt lost with its killed worker is requeued without using a retry.
    assert [r for r in rows if r["attempts"] > r["max_retries"] + 1 + r["interruptions"]] == []
    # A job no kill touched ran exactly as often as its row says, and the completed ones ran.
    untouched = [r for r in rows if str(r["id"]) not in settling.killed_ids]
    assert [(str(r["id"]), r["attempts"], ran[str(r["id"])]) for r in untouched
            if ran[str(r["id"])] != r["attempts"]] == []
    assert all(ran[str(r["id"])] >= 1 for r in rows if r["status"] == "completed")
    assert all(w.process.poll() is None for w in workers.values()), "a surviving worker died"
