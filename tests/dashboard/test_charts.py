"""Charts as plain data: buckets, round axes, coordinates inside the plot, links per bar."""

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from dashboard import charts

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)


def sample(minute: int, **counts):
    fields = dict(pending=0, scheduled=0, running=0, completed_count=0, failed_count=0, latency_ms=0)
    return SimpleNamespace(taken_at=T0 + timedelta(minutes=minute, seconds=5), **{**fields, **counts})


def test_buckets_add_throughput_and_keep_peak_depth():
    rows = [sample(0, pending=3, completed_count=2), sample(1, pending=7, completed_count=1, failed_count=1),
            sample(25, pending=1), sample(99, pending=50)]
    slots = charts.buckets(rows, T0, T0 + timedelta(hours=1), timedelta(minutes=20))
    assert len(slots) == 3
    assert (slots[0].pending, slots[0].completed, slots[0].failed, slots[0].samples) == (7, 3, 1, 2)
    assert slots[1].pending == 1 and slots[2].samples == 0


def test_axis_steps_are_round_integers():
    assert [charts.nice_step(v) for v in (0, 3, 7, 19, 25, 41, 240, 999)] == [1, 1, 2, 5, 10, 20, 100, 500]


def test_throughput_chart_bars_stack_inside_the_plot_and_link():
    slots = charts.buckets([sample(0, completed_count=8, failed_count=2), sample(1, completed_count=4)],
                           T0, T0 + timedelta(minutes=2), timedelta(minutes=1))
    chart = charts.throughput_chart("t", slots, lambda slot, state: f"/jobs/?state={state}&since={slot.start:%H%M}")
    assert [b.css for b in chart.bars] == ["ok", "bad", "ok"]
    for bar in chart.bars:
        assert chart.top <= bar.y and bar.y + bar.height <= chart.bottom + 0.01
        assert chart.left <= bar.x <= chart.right
    assert chart.bars[0].href == "/jobs/?state=completed&since=1000"
    assert [t.label for t in chart.y_ticks] == ["0", "5", "10", "15", "20"] and chart.summary == "12 completed, 2 failed"
    assert not chart.empty


def test_depth_chart_skips_slots_without_samples():
    slots = charts.buckets([sample(0, pending=4), sample(2, running=2)], T0, T0 + timedelta(minutes=3),
                           timedelta(minutes=1))
    chart = charts.depth_chart("d", slots, lambda slot, state: "/jobs/")
    pending = next(line for line in chart.lines if line.name == "pending")
    assert len(pending.points) == 2 and pending.path.count(",") == 2


def test_an_empty_window_says_so():
    chart = charts.throughput_chart("t", charts.buckets([], T0, T0 + timedelta(hours=1), timedelta(minutes=1)),
                                    lambda s, st: "")
    assert chart.empty and chart.bars == []
