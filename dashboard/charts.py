"""Charts as plain data: every coordinate and label is computed here, and one template
(dashboard/partials/chart.html) draws any Chart as inline SVG without arithmetic."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

WIDTH, HEIGHT = 640, 190
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 12, 26  # margins: room for the axis labels


@dataclass
class Tick:
    x: float
    y: float
    label: str
    # the gridline (horizontal for the y axis, a short mark for the x axis)
    x1: float = 0
    y1: float = 0
    x2: float = 0
    y2: float = 0


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str
    href: str


@dataclass
class Point:
    x: float
    y: float
    title: str
    href: str


@dataclass
class Line:
    name: str
    css: str
    points: list[Point]
    path: str  # the polyline's `points` attribute


@dataclass
class Chart:
    title: str
    summary: str
    width: int = WIDTH
    height: int = HEIGHT
    left: float = LEFT
    right: float = WIDTH - RIGHT
    top: float = TOP
    bottom: float = HEIGHT - BOTTOM
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)
    empty: bool = True

    @property
    def center_x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def center_y(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass
class Bucket:
    """One time slot of a chart: depth at its end (or peak) and throughput within it."""

    start: datetime
    end: datetime
    pending: int = 0
    scheduled: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    latency_ms: int = 0
    samples: int = 0


def buckets(samples: Iterable, since: datetime, until: datetime, size: timedelta) -> list[Bucket]:
    """Fold QueueSample-like rows into fixed slots: throughput adds up, depth keeps the peak."""
    count = max(1, math.ceil((until - since) / size))
    slots = [Bucket(since + i * size, since + (i + 1) * size) for i in range(count)]
    for sample in samples:
        index = int((sample.taken_at - since) / size)
        if not 0 <= index < count:
            continue
        slot = slots[index]
        slot.samples += 1
        slot.completed += sample.completed_count
        slot.failed += sample.failed_count
        slot.pending = max(slot.pending, sample.pending)
        slot.scheduled = max(slot.scheduled, sample.scheduled)
        slot.running = max(slot.running, sample.running)
        slot.latency_ms = max(slot.latency_ms, sample.latency_ms)
    return slots


def nice_step(peak: float, ticks: int = 4) -> int:
    """A whole 1, 2 or 5 × 10ⁿ step so that `ticks` steps reach `peak`: round, integer axis labels."""
    raw = max(peak, 1) / ticks
    power = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    for multiple in (1, 2, 5, 10):
        if multiple * power >= raw:
            return max(1, int(multiple * power))
    return int(10 * power)


def _frame(chart: Chart, slots: list[Bucket], top_value: int) -> float:
    """Axes ticks for `slots` on x and 0..top_value on y; returns the slot width."""
    plot_w, plot_h = chart.right - chart.left, chart.bottom - chart.top
    for i in range(5):
        value = top_value * i // 4
        y = chart.bottom - plot_h * i / 4
        label = str(value) if value < 10_000 else f"{value / 1000:g}k"
        chart.y_ticks.append(Tick(x=chart.left - 6, y=y + 4, label=label, x1=chart.left, y1=y, x2=chart.right, y2=y))
    slot_w = plot_w / max(1, len(slots))
    every = max(1, math.ceil(len(slots) / 6))
    for i, slot in enumerate(slots):
        if i % every == 0:
            x = chart.left + i * slot_w
            chart.x_ticks.append(Tick(x=x, y=chart.bottom + 16, label=f"{slot.start:%H:%M}",
                                      x1=x, y1=chart.bottom, x2=x, y2=chart.bottom + 4))
    return slot_w


def throughput_chart(title: str, slots: list[Bucket], link: Callable[[Bucket, str], str]) -> Chart:
    """Stacked bars per slot: completed (bottom) and failed (top), each linking to its jobs."""
    completed, failed = sum(s.completed for s in slots), sum(s.failed for s in slots)
    chart = Chart(title=title, summary=f"{completed} completed, {failed} failed",
                  legend=[("completed", "ok"), ("failed", "bad")])
    top_value = 4 * nice_step(max([s.completed + s.failed for s in slots] + [0]))
    slot_w = _frame(chart, slots, top_value)
    scale = (chart.bottom - chart.top) / top_value
    gap = min(1.0, slot_w * 0.15)
    for i, slot in enumerate(slots):
        x = chart.left + i * slot_w + gap / 2
        base = chart.bottom
        for state, value, css in (("completed", slot.completed, "ok"), ("failed", slot.failed, "bad")):
            if not value:
                continue
            height = value * scale
            chart.bars.append(Bar(x=round(x, 2), y=round(base - height, 2), width=round(slot_w - gap, 2),
                                  height=round(height, 2), css=css, href=link(slot, state),
                                  title=f"{slot.start:%H:%M}–{slot.end:%H:%M}: {value} {state}"))
            base -= height
    chart.empty = not (completed or failed)
    return chart


def depth_chart(title: str, slots: list[Bucket], link: Callable[[Bucket, str], str]) -> Chart:
    """Lines of pending, scheduled and running jobs per slot (the peak within it)."""
    series = (("pending", "warn"), ("scheduled", "info"), ("running", "run"))
    peak = max([getattr(s, name) for s in slots for name, _ in series] + [0])
    chart = Chart(title=title, summary=f"peak {peak} jobs waiting or running",
                  legend=[(name, css) for name, css in series])
    top_value = 4 * nice_step(peak)
    slot_w = _frame(chart, slots, top_value)
    scale = (chart.bottom - chart.top) / top_value
    for name, css in series:
        points = []
        for i, slot in enumerate(slots):
            if not slot.samples:
                continue
            value = getattr(slot, name)
            points.append(Point(x=round(chart.left + (i + 0.5) * slot_w, 2), y=round(chart.bottom - value * scale, 2),
                                title=f"{slot.start:%H:%M}: {value} {name}", href=link(slot, name)))
        chart.lines.append(Line(name=name, css=css, points=points,
                                path=" ".join(f"{p.x},{p.y}" for p in points)))
    chart.empty = not any(s.samples for s in slots)
    return chart


def minute_buckets(minutes: Iterable) -> list[Bucket]:
    """jobs.stats.throughput() minutes as chart slots."""
    return [Bucket(m.at, m.at + timedelta(minutes=1), completed=m.completed, failed=m.failed, samples=1)
            for m in minutes]
