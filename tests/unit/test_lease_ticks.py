"""The latest tick of a line is searched once per tick (worker/leaseticks.py): every run of a
pair asks for its tick, and until the line's next tick the answer is the one found, without
building the trigger and walking its ticks again; the answers are those of a fresh search,
across a change to summer time, at the next tick exactly, and for an earlier `now`.
"""

from __future__ import annotations

import datetime as dt

import pytest

from worker import leaseticks
from worker.cron import CrontabTrigger
from worker.leases import latest_tick

LINE, ZONE = "0 2 * * *", "Europe/Amsterdam"  # 02:00 local: 01:00 UTC in winter


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_the_latest_tick_is_searched_once_per_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    real = leaseticks.cron_trigger

    def counted(line: str, zone: str) -> CrontabTrigger:
        built.append(line)
        return real(line, zone)

    monkeypatch.setattr(leaseticks, "cron_trigger", counted)
    monkeypatch.setattr(leaseticks, "_LATEST", {})
    asked = [
        ("2026-03-28T12:00:00", "2026-03-28T01:00:00", 1),
        ("2026-03-29T00:59:59", "2026-03-28T01:00:00", 1),  # the same tick: no search
        # 02:00 does not exist on 29 March (summer time): the tick is 03:00 CEST, 01:00 UTC.
        ("2026-03-29T01:00:00", "2026-03-29T01:00:00", 2),
        ("2026-03-29T23:00:00", "2026-03-29T01:00:00", 2),
        ("2026-03-30T00:00:00", "2026-03-30T00:00:00", 3),  # 02:00 CEST
        ("2026-03-27T05:00:00", "2026-03-27T01:00:00", 4),  # an earlier now: searched again
    ]
    for now, tick, searches in asked:
        assert latest_tick(LINE, ZONE, _at(now)) == _at(tick), now
        assert len(built) == searches, now
    for now, tick, _ in asked:  # a fresh search agrees
        leaseticks._LATEST.clear()
        assert latest_tick(LINE, ZONE, _at(now)) == _at(tick), now
