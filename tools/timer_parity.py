#!/usr/bin/env python3
"""Write cron fire times computed by APScheduler (what StackStorm's timers engine uses).

Usage: tools/timer_parity.py > st2-core/tests/fixtures/timers/apscheduler_cron.json
Needs APScheduler 3.11 (StackStorm pins 3.11.0): pip install apscheduler==3.11.0

Each case is a CronTimer's parameters, an instant, and the next fire times after it (each one
strictly after the one before), as RFC 3339 UTC strings. The st2-core test `timers` checks that
TimerSchedule::next_after gives the same times. Daylight-saving transitions are left out on
purpose: there this project follows its own documented rule (skip local times that do not exist,
fire repeated ones once) rather than APScheduler's.
"""
import datetime
import json
import sys

from apscheduler.triggers.cron import CronTrigger

UTC = datetime.timezone.utc

PARAMS = [
    {"minute": "*/5"},
    {"second": "*/10"},
    {"hour": 3},
    {"minute": 30},
    {"day_of_week": 0},
    {"day_of_week": "mon-fri", "hour": 9},
    {"day_of_week": "sat,sun", "hour": "8-10", "minute": "15,45"},
    {"day": "last"},
    {"day": "last fri", "hour": 17},
    {"day": "1st mon,3rd wed", "hour": 12, "minute": 30},
    {"day": "5th sat"},
    {"month": 2, "day": 29},
    {"month": "jan-mar", "day": "*/10"},
    {"month": "*/4", "day": "10-20/5", "hour": "*/12"},
    {"month": "nov", "day": "31"},
    {"year": "2025-2027", "month": 6},
    {"year": "*/3", "month": 12, "day": 25},
    {"week": "*/2", "day_of_week": "tue", "hour": 7},
    {"week": 1},
    {"week": 53, "hour": 6},
    {"day": 31, "day_of_week": "fri"},
    {"hour": "5/6", "minute": "7-50/20"},
    {"minute": "0,59", "second": "0,59"},
    {"day": "1,15", "hour": "0", "minute": "0", "second": "30"},
    {},
]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]
AFTER = ["2024-01-01T00:00:00+00:00", "2024-05-31T23:59:59.5+00:00", "2026-12-30T12:34:56+00:00"]
COUNT = 6
# Windows around DST changes, where the documented rules differ from APScheduler's.
DST_MARGIN = datetime.timedelta(hours=3)


def crosses_dst(zone, start, end):
    """Whether the UTC offset of `zone` changes anywhere in [start, end]."""
    tz = CronTrigger(timezone=zone).timezone
    probe = start - DST_MARGIN
    offset = probe.astimezone(tz).utcoffset()
    while probe <= end + DST_MARGIN:
        if probe.astimezone(tz).utcoffset() != offset:
            return True
        probe += datetime.timedelta(minutes=30)
    return False


def iso(at):
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def main():
    cases = []
    for params in PARAMS:
        for zone in ZONES:
            trigger = CronTrigger(timezone=zone, **params)
            for after_text in AFTER:
                after = datetime.datetime.fromisoformat(after_text)
                fires = []
                previous, now = None, after + datetime.timedelta(microseconds=1)
                while len(fires) < COUNT:
                    nxt = trigger.get_next_fire_time(previous, now)
                    if nxt is None:
                        break
                    fires.append(nxt)
                    previous, now = nxt, nxt + datetime.timedelta(microseconds=1)
                last = fires[-1] if fires else after + datetime.timedelta(days=366)
                if zone != "UTC" and crosses_dst(zone, after, last):
                    continue
                cases.append(
                    {
                        "parameters": dict(params, timezone=zone),
                        "after": iso(after),
                        "fire_times": [iso(f) for f in fires],
                    }
                )
    # One case per line: small, and diffs stay readable.
    lines = ",\n".join("  " + json.dumps(case) for case in cases)
    sys.stdout.write('{"apscheduler": "3.11.0", "cases": [\n' + lines + "\n]}\n")


if __name__ == "__main__":
    main()
