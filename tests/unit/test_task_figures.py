"""One overdue count: each open task at most once, so overdue never outnumbers open."""

from __future__ import annotations

import datetime as dt

from agents.tasks import Summary, task_figures

NOW = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.timezone.utc)
PAST, FUTURE = NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=1)


def test_each_open_task_is_overdue_once_under_the_limit_it_broke_last():
    summaries = {
        "both-passed": Summary("dispatched", "cgj", PAST, PAST, None),  # not accepted, and past the finish: finish
        "not-accepted": Summary("dispatched", "cgj", PAST, FUTURE, None),
        "late": Summary("accepted", "cgj", None, PAST, None),
        "parked": Summary("parked", "cgj", None, PAST, None),  # the clock is stopped
        "closed": Summary("closed", "cgj", None, PAST, None),
        "in-time": Summary("accepted", "zjj", None, FUTURE, None),
    }
    figures = task_figures(summaries, NOW)
    assert figures["overdue"] == {("cgj", "finish"): 2, ("cgj", "accept"): 1}
    open_ = sum(n for status, n in figures["by_status"].items() if status in ("dispatched", "accepted"))
    assert sum(figures["overdue"].values()) <= open_
