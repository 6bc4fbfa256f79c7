"""The task state machine: the closed loop, its side roads, and no sequence that reaches nonsense."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.lifecycle import TRANSITIONS, Event, InvalidTransition, Task, apply

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def run(*steps: tuple[str, dict]) -> Task:
    task = Task("t1", dispatched_at=T0)
    for n, (kind, extra) in enumerate(steps, start=1):
        task = apply(task, Event(f"e{n}", kind, T0 + dt.timedelta(hours=n), **extra))
    return task


def test_the_closed_loop():
    task = run(("accepted", {}), ("completed", {}), ("verified", {}), ("closed", {}), ("evaluated", {"score": 3}))
    assert (task.status, task.score, task.rework) == ("evaluated", 3, 0)
    assert task.accepted_at < task.completed_at < task.closed_at


def test_a_failed_check_is_rework_counted_against_the_unit():
    task = run(("accepted", {}), ("completed", {}), ("rework", {}), ("completed", {}), ("verified", {}))
    assert (task.status, task.rework) == ("verified", 1)


def test_a_return_needs_a_reason_and_ends_the_task():
    with pytest.raises(InvalidTransition, match="needs a reason"):
        run(("returned", {}))
    task = run(("returned", {"reason": "职能不符"}))
    assert (task.status, task.return_reason) == ("returned", "职能不符")
    with pytest.raises(InvalidTransition, match="not possible when the task is returned"):
        apply(task, Event("x", "accepted", T0 + dt.timedelta(days=1)))


def test_extensions_and_parking():
    task = run(("accepted", {}), ("extension_requested", {}), ("extension_approved", {"days": 5}),
               ("parked", {"reason": "需立项改造", "review_on": dt.date(2027, 3, 1)}), ("resumed", {}))
    assert (task.status, task.extension_days, task.extensions_requested, task.parked_reason) == ("accepted", 5, 1, None)


def test_supervision_does_not_move_the_task():
    task = run(("supervised", {}), ("escalated", {}), ("accepted", {}), ("supervised", {}))
    assert (task.status, task.supervised, task.escalated) == ("accepted", 2, True)


def test_a_redelivered_event_is_a_no_op():
    task = run(("accepted", {}))
    assert apply(task, Event("e1", "accepted", T0 + dt.timedelta(hours=1))) is task


@pytest.mark.parametrize(("steps", "message"), [
    ((("completed", {}),), "not possible when the task is dispatched"),
    ((("accepted", {}), ("evaluated", {"score": 3})), "not possible when the task is accepted"),
    ((("dispatched", {}),), "created by its dispatch"),
    ((("teleported", {}),), "unknown event kind"),
    ((("accepted", {}), ("parked", {"reason": "x"})), "needs a reason and a review date"),
])
def test_invalid_transitions_say_why(steps, message):
    with pytest.raises(InvalidTransition, match=message):
        run(*steps)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([*TRANSITIONS, "dispatched"]), st.integers(0, 5)), max_size=25))
def test_no_sequence_of_events_reaches_an_impossible_state(steps):
    task = Task("t", dispatched_at=T0)
    at = T0
    applied: list[str] = []
    for n, (kind, jitter) in enumerate(steps):
        at += dt.timedelta(minutes=jitter)
        event = Event(f"e{n}", kind, at, reason="职能不符" if kind == "returned" else "x", days=1,
                      review_on=dt.date(2027, 1, 1), score=2)
        try:
            task = apply(task, event)
        except InvalidTransition:
            continue
        applied.append(kind)
        # invariants
        assert task.status in {"dispatched", "accepted", "extension_pending", "completed", "verified", "closed",
                               "evaluated", "returned", "parked"}
        if task.status in ("completed", "verified", "closed", "evaluated"):
            assert task.accepted_at is not None and task.completed_at is not None
            assert task.completed_at >= task.accepted_at
        if task.status in ("closed", "evaluated"):
            assert task.closed_at >= task.completed_at
        if task.status == "evaluated":
            assert task.score in (1, 2, 3)
        if task.status == "returned":
            assert task.accepted_at is None and task.return_reason
        if task.status == "parked":
            assert task.parked_reason and task.review_on
        assert (task.rework, task.supervised) == (applied.count("rework"), applied.count("supervised"))
        assert len(task.applied) == len(applied)
