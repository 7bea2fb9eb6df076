"""Schedules in words for the Crons page: "every 5 minutes", "daily at 02:00"."""

from __future__ import annotations

ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
DAYS = ["Sundays", "Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays"]


def describe_every(seconds: int) -> str:
    """"every 30 s", "every 5 minutes", "every 2 hours"."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds % size == 0:
            count = seconds // size
            return f"every {unit}" if count == 1 else f"every {count} {unit}s"
    return f"every {seconds} s"


def describe_cron(cron: str) -> str:
    """The common cron shapes in words; anything else as "on a custom schedule"."""
    fields = ALIASES.get(cron.strip().lower(), cron).split()
    if len(fields) != 5:
        return "on a custom schedule"
    minute, hour, day, month, weekday = fields
    if [hour, day, month, weekday] == ["*"] * 4:
        if minute == "*":
            return "every minute"
        if minute.startswith("*/") and minute[2:].isdigit():
            return describe_every(int(minute[2:]) * 60)
        if minute.isdigit():
            return f"hourly at :{int(minute):02}"
    if not minute.isdigit() or month != "*":
        return "on a custom schedule"
    if hour.startswith("*/") and hour[2:].isdigit() and day == weekday == "*":
        return f"every {hour[2:]} hours at :{int(minute):02}"
    if not hour.isdigit():
        return "on a custom schedule"
    at = f"at {int(hour):02}:{int(minute):02}"
    if day == "*" and weekday == "*":
        return f"daily {at}"
    if day == "*" and weekday in ("1-5", "mon-fri"):
        return f"on weekdays {at}"
    if day == "*" and weekday.isdigit() and int(weekday) <= 7:
        return f"on {DAYS[int(weekday)]} {at}"
    if day.isdigit() and weekday == "*":
        return f"monthly on day {int(day)} {at}"
    return "on a custom schedule"
