"""When a worker's table entry has served its purpose: the instant of its last activity, from the
entry itself (so a restart does not prolong it). The worker forgets an entry a retention period
after that instant (`CITYOPS_RETENTION_HOURS`); its history stays in ClickHouse.

- a task: once finished — closed (an evaluation may still come within the retention), evaluated,
  or returned (its re-routing is a new task); an open or parked task is never forgotten;
- a caller: their latest report (a repeat call can join a case only within the merge window);
- a case key: its latest case or hotspot report (both expire within their windows), or when the
  stage last handled one if that is later: a report that comes long after it was made (a backlog, a
  vendor catching up) keeps its case a whole retention, so the same report delivered again after a
  restart still finds it instead of opening a second case;
- a received id: when it arrived (a reused id after the retention is no longer recognised).
"""

from __future__ import annotations

import datetime as dt

from schemas import TaskState

FINISHED = ("closed", "evaluated", "returned")


def task_finished_at(task: TaskState) -> dt.datetime | None:
    """A finished task's last event (an evaluation after the closing counts from the evaluation)."""
    return task.last_event_at if task.status in FINISHED else None


def caller_last_at(recent: list[dict]) -> dt.datetime | None:
    """`recent`: the caller table's value (RecentReport.to_json of each)."""
    return max((dt.datetime.fromisoformat(r["at"]) for r in recent), default=None)


def case_last_at(state: dict) -> dt.datetime | None:
    """`state`: the case table's value ({"cases": Case.to_json…, "hotspots": HotspotDetector.state(),
    "handled_at": when the stage last handled a report of it})."""
    instants = [dt.datetime.fromisoformat(c["last_at"]) for c in state.get("cases", [])]
    instants += [dt.datetime.fromisoformat(state["handled_at"])] if state.get("handled_at") else []
    instants += [dt.datetime.fromisoformat(t) for _, _, times in state.get("hotspots", {}).get("seen", [])
                 for t in times]
    return max(instants, default=None)
