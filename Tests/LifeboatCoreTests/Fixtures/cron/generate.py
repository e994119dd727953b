#!/usr/bin/env python3
"""Writes croniter.json: the next firings of cron expressions as Python's croniter 7.0.0
(PyPI) computes them, for SchedulerCoreTests to compare with Lifeboat's own.

    pip install croniter==7.0.0 && python3 generate.py > croniter.json

croniter and Lifeboat agree on everything but a local time that occurs twice (clocks set
back): croniter fires at both occurrences, Lifeboat at the first only (as cronie and systemd
do). The test drops croniter's second occurrences before comparing.
"""
import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo
from croniter import croniter

EXPRESSIONS = [
    "30 2 * * *", "*/15 2 * * *", "0 * * * *", "30 1 * * *", "0 */4 * * *", "15 3 * * 1-5",
    "0 0 31 * *", "0 12 29 2 *", "*/20 9-10 * * mon-fri", "0 0 13 * 5", "5,35 */6 * * *",
    "0 3 * jan,jul sun", "59 23 * * *", "0 0 1 * *", "0 2 * * 0", "10-40/10 1-3 * * *",
]
ZONES = ["Europe/Berlin", "America/New_York", "UTC", "Australia/Sydney"]
STARTS = ["2026-03-07T12:00:00Z", "2026-03-28T12:00:00Z", "2026-10-24T12:00:00Z", "2026-10-31T12:00:00Z",
          "2026-04-04T12:00:00Z", "2027-02-27T12:00:00Z"]

cases = []
for expression in EXPRESSIONS:
    for zone in ZONES:
        for start in STARTS:
            tz = ZoneInfo(zone)
            begin = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(tz)
            it = croniter(expression, begin)
            fires = [it.get_next(datetime).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") for _ in range(12)]
            cases.append({"expression": expression, "timezone": zone, "after": start, "fires": fires})
print("[\n" + ",\n".join(json.dumps(case) for case in cases) + "\n]")  # one case a line
