"""When a table entry has served its purpose, read from the entry itself."""

import datetime as dt

from pipeline.dedupe import RecentReport
from pipeline.retention import caller_last_at, case_last_at, task_finished_at
from schemas import TaskState

T = dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC)


def task(**changes) -> TaskState:
    return TaskState(task_id="t", incident_id="i", unit="cgj", role="primary", item_no="1", top_class="x",
                     dutylist_version="v", accept_within_hours=2, finish_within_days=5, dispatched_at=T,
                     last_event_at=changes.pop("last_event_at", T), **changes)


def test_only_a_finished_task_has_an_end_and_it_is_its_latest_step():
    assert task_finished_at(task()) is None
    assert task_finished_at(task(status="accepted", accepted_at=T)) is None
    assert task_finished_at(task(status="parked", parked_at=T)) is None  # 挂账: waits for its review date
    closed = T + dt.timedelta(days=3)
    assert task_finished_at(task(status="closed", closed_at=closed, last_event_at=closed)) == closed
    evaluated = closed + dt.timedelta(days=1)  # the evaluation came later: counted from it
    assert task_finished_at(task(status="evaluated", closed_at=closed, last_event_at=evaluated)) == evaluated
    assert task_finished_at(task(status="returned", returned_at=T)) == T


def test_a_caller_and_a_case_key_count_from_their_latest_report():
    recent = [RecentReport("a", "k", "1", T, "x").to_json(), RecentReport("b", None, None, T + dt.timedelta(hours=5),
                                                                          "y").to_json()]
    assert caller_last_at(recent) == T + dt.timedelta(hours=5)
    assert caller_last_at([]) is None
    state = {"cases": [{"last_at": T.isoformat()}],
             "hotspots": {"seen": [["1", "grid-1", [(T + dt.timedelta(hours=1)).isoformat()]]], "alerting": []}}
    assert case_last_at(state) == T + dt.timedelta(hours=1)
    assert case_last_at({"cases": [], "hotspots": {}}) is None
    # A report that came a month after it was made: its case counts from when the stage handled it.
    late = T + dt.timedelta(days=40)
    assert case_last_at(state | {"handled_at": late.isoformat()}) == late
    assert case_last_at(state | {"handled_at": T.isoformat()}) == T + dt.timedelta(hours=1)


def test_a_routing_counts_once_the_incident_has_left_the_queue():
    from agents.queue import routed_at

    assert routed_at({"to": "manual", "attempt": 0, "at": T.isoformat()}) is None  # still waiting: kept
    assert routed_at({"to": "closed", "attempt": 0, "at": T.isoformat()}) == T
    assert routed_at({"to": "cgj 3.1@v", "attempt": 1}) is None  # recorded before the time was kept
