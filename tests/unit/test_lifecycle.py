"""The task state machine: the closed loop, its side roads, the SLA clock's proposals, and no sequence
of events that reaches nonsense."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.lifecycle import ALL, TRANSITIONS, InvalidTransition, apply, open_task, raised_alert
from pipeline.sla import SlaClock
from pipeline.workcalendar import WorkCalendar
from schemas import Dispatch, TaskEvent, TaskState

CN = dt.timezone(dt.timedelta(hours=8))
T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=CN)  # a Monday
CLOCK = SlaClock(WorkCalendar())


def dispatched(at: dt.datetime = T0, *, accept_hours: float = 2, finish_days: float = 5) -> TaskEvent:
    d = Dispatch(dispatch_id="t1", incident_id="i1", unit="cgj", role="primary", item_no="CJ-029", item_title="路灯",
                 top_class="城乡建设", dutylist_version="v1", legal_basis="x", confidence=0.9, reason="", dispatched_at=at,
                 accept_within_hours=accept_hours, finish_within_days=finish_days)
    return TaskEvent(event_id="e0", task_id="t1", incident_id="i1", unit="cgj", kind="dispatched", at=at, dispatch=d)


def event(n: int | str, kind: str, at: dt.datetime, **extra) -> TaskEvent:
    return TaskEvent(event_id=f"e{n}", task_id="t1", incident_id="i1", unit="cgj", kind=kind, at=at, **extra)


def run(*steps: tuple[str, dict]) -> TaskState:
    task = open_task(dispatched(), CLOCK)
    for n, (kind, extra) in enumerate(steps, start=1):
        task = apply(task, event(n, kind, T0 + dt.timedelta(hours=n), **extra), CLOCK)
    return task


def test_the_closed_loop():
    task = run(("accepted", {}), ("completed", {"result": "已更换灯泡"}), ("verified", {}), ("closed", {}),
               ("evaluated", {"score": 3}))
    assert (task.status, task.score, task.rework, task.version) == ("evaluated", 3, 0, 6)
    assert task.dispatched_at < task.accepted_at < task.completed_at < task.verified_at < task.closed_at < task.evaluated_at


def test_a_failed_check_is_rework_counted_against_the_unit():
    task = run(("accepted", {}), ("completed", {}), ("rework", {"reason": "现场仍未修复"}), ("completed", {}),
               ("verified", {}))
    assert (task.status, task.rework) == ("verified", 1)


def test_a_return_needs_a_reason_and_ends_the_task():
    with pytest.raises(InvalidTransition, match="needs a reason"):
        run(("returned", {}))
    task = run(("returned", {"reason": "职能不符"}))
    assert (task.status, task.return_reason) == ("returned", "职能不符")
    with pytest.raises(InvalidTransition, match="not possible when the task is returned"):
        apply(task, event("x", "accepted", T0 + dt.timedelta(days=1)), CLOCK)


def test_extensions_and_parking_stop_the_finish_clock_and_move_the_deadline():
    before = run(("accepted", {}))
    assert before.finish_by == dt.datetime(2026, 11, 9, 17, 30, tzinfo=CN)  # 5 working days after Monday
    task = run(("accepted", {}), ("extension_requested", {}), ("extension_approved", {"days": 5}))
    # requested at 11:00, approved at 12:00 the same day: one working hour paused, plus 5 days
    assert task.paused_seconds == 3600 and task.extension_days == 5
    assert task.finish_by == dt.datetime(2026, 11, 17, 10, 0, tzinfo=CN)  # Nov 16 17:30 + 1 working hour
    parked = apply(task, event(9, "parked", T0 + dt.timedelta(days=1), reason="需立项改造",
                               review_on=dt.date(2027, 3, 1)), CLOCK)
    assert parked.status == "parked" and parked.paused_since is not None
    assert CLOCK.due(parked, T0 + dt.timedelta(days=60)) == []  # parked: counted apart, never overdue
    resumed = apply(parked, event(10, "resumed", T0 + dt.timedelta(days=2)), CLOCK)
    assert (resumed.status, resumed.parked_reason, resumed.paused_since) == ("accepted", None, None)
    assert resumed.paused_seconds == 3600 + 7 * 3600  # one working day (7 office hours) parked


def test_supervision_does_not_move_the_task_and_escalation_happens_once():
    task = run(("supervised", {}), ("escalated", {}), ("accepted", {}), ("supervised", {}), ("escalated", {}))
    assert (task.status, task.supervised) == ("accepted", 2)
    assert task.escalated_at == T0 + dt.timedelta(hours=2)


def test_merged_reports_are_counted_in_any_status():
    task = run(("accepted", {}), ("completed", {}), ("merged", {}), ("verified", {}), ("closed", {}), ("merged", {}))
    assert task.reports == 3


def test_a_redelivered_event_is_a_no_op():
    task = run(("accepted", {}))
    assert apply(task, event(1, "accepted", T0 + dt.timedelta(hours=1)), CLOCK) is task


@pytest.mark.parametrize(("steps", "message"), [
    ((("completed", {}),), "not possible when the task is dispatched"),
    ((("accepted", {}), ("evaluated", {"score": 3})), "not possible when the task is accepted"),
    ((("accepted", {}), ("parked", {"reason": "x"})), "needs a reason and a review date"),
    ((("accepted", {}), ("extension_requested", {}), ("extension_approved", {})), "granted working days"),
    ((("overdue", {"limit": "accept"}),), "come from the SLA timer"),  # a department cannot raise alerts
])
def test_invalid_transitions_say_why(steps, message):
    with pytest.raises(InvalidTransition, match=message):
        run(*steps)


def test_events_out_of_order_and_unknown_tasks_are_refused():
    task = run(("accepted", {}))
    with pytest.raises(InvalidTransition, match="earlier than the task's last event"):
        apply(task, event(9, "completed", T0), CLOCK)
    with pytest.raises(InvalidTransition, match="already dispatched"):
        apply(task, dispatched().model_copy(update={"event_id": "other"}), CLOCK)
    with pytest.raises(InvalidTransition, match="unknown task .*: it must be dispatched"):
        open_task(event(1, "accepted", T0), CLOCK)


def test_deadlines_in_working_time():
    task = open_task(dispatched(dt.datetime(2026, 11, 6, 16, 0, tzinfo=CN), accept_hours=2, finish_days=1), CLOCK)
    # Friday 16:00 + 2 working hours: 1.5 h on Friday, 0.5 h on Monday morning
    assert task.accept_by == dt.datetime(2026, 11, 9, 9, 30, tzinfo=CN)
    assert task.accept_warn_at == dt.datetime(2026, 11, 9, 9, 6, tzinfo=CN)  # 80% = 1.6 h
    assert task.finish_by == dt.datetime(2026, 11, 9, 17, 30, tzinfo=CN)
    assert task.escalate_at == dt.datetime(2026, 11, 11, 17, 30, tzinfo=CN)  # 2 working days later
    # The limit crossing National Day: dispatched on Sep 30, one day to finish → Oct 8
    holiday = open_task(dispatched(dt.datetime(2026, 9, 30, 16, 0, tzinfo=CN), finish_days=1), CLOCK)
    assert holiday.finish_by == dt.datetime(2026, 10, 8, 17, 30, tzinfo=CN)


def test_the_timer_proposes_the_latest_stage_due_once():
    task = open_task(dispatched(accept_hours=2, finish_days=1), CLOCK)
    assert CLOCK.due(task, T0 + dt.timedelta(minutes=30)) == []
    [warning] = CLOCK.due(task, T0 + dt.timedelta(minutes=100))
    assert (warning.kind, warning.limit, warning.by) == ("prewarning", "accept", "sla")
    warned = apply(task, warning, CLOCK)
    assert raised_alert(task, warned) == "accept:prewarning@" + task.accept_warn_at.isoformat()
    assert CLOCK.due(warned, T0 + dt.timedelta(minutes=110)) == []  # raised once
    assert apply(warned, warning, CLOCK) is warned  # redelivered
    # Down for two days: the accept limit is overdue and the finish limit is overdue, nothing stale first.
    late = CLOCK.due(warned, T0 + dt.timedelta(days=2, hours=1))
    assert {(e.limit, e.kind) for e in late} == {("accept", "overdue"), ("finish", "overdue")}


def test_a_stale_proposal_is_a_no_op_not_an_error():
    task = open_task(dispatched(accept_hours=2), CLOCK)
    [overdue] = CLOCK.due(task, T0 + dt.timedelta(hours=3))
    accepted = apply(task, event(1, "accepted", T0 + dt.timedelta(hours=2, minutes=30)), CLOCK)
    assert apply(accepted, overdue, CLOCK) is accepted  # accepted before the proposal arrived


def test_escalation_after_the_further_limit():
    task = run(("accepted", {}))
    [escalation] = CLOCK.due(task, task.escalate_at + dt.timedelta(minutes=1))
    assert (escalation.kind, escalation.limit) == ("escalated", "finish")
    escalated = apply(task, escalation, CLOCK)
    assert escalated.escalated_at is not None and raised_alert(task, escalated).startswith("finish:escalated@")
    assert CLOCK.due(escalated, task.escalate_at + dt.timedelta(days=5)) == []


EVENT_KINDS = [k for k in TRANSITIONS if k not in ("prewarning", "overdue")] + ["dispatched"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(EVENT_KINDS), st.integers(0, 600)), max_size=25),
       st.sampled_from([1, 2, 3]))
def test_no_sequence_of_events_reaches_an_impossible_state(steps, score):
    task = open_task(dispatched(), CLOCK)
    at = T0
    applied: list[str] = []
    for n, (kind, minutes) in enumerate(steps, start=1):
        at += dt.timedelta(minutes=minutes)
        for proposal in CLOCK.due(task, at):  # the timer runs between events
            task = apply(task, proposal, CLOCK)
        extra = {"reason": "职能不符" if kind == "returned" else "x", "days": 1, "review_on": dt.date(2027, 1, 1),
                 "score": score}
        if kind == "dispatched":
            extra["dispatch"] = dispatched().dispatch
        before = task
        try:
            task = apply(task, event(n, kind, at, **extra), CLOCK)
        except InvalidTransition:
            continue
        if task is not before:
            applied.append(kind)
        # invariants
        assert task.status in ALL
        if task.status in ("completed", "verified", "closed", "evaluated"):
            assert task.accepted_at is not None and task.completed_at is not None
            assert task.completed_at >= task.accepted_at
        if task.status in ("closed", "evaluated"):
            assert task.closed_at >= task.completed_at >= task.dispatched_at
        if task.status == "evaluated":
            assert task.score in (1, 2, 3)
        if task.status == "returned":
            assert task.accepted_at is None and task.return_reason
        if task.status == "parked":
            assert task.parked_reason and task.review_on and task.paused_since
        assert (task.paused_since is not None) == (task.status in ("extension_pending", "parked"))
        assert task.finish_by >= task.finish_warn_at >= task.dispatched_at
        assert (task.rework, task.supervised) == (applied.count("rework"), applied.count("supervised"))
        assert len(task.alerts_raised) == len(set(task.alerts_raised))


def test_next_due_tells_the_timer_when_to_look_again():
    task = open_task(dispatched(accept_hours=2, finish_days=1), CLOCK)
    assert CLOCK.next_due(task) == task.accept_warn_at
    [warning] = CLOCK.due(task, task.accept_warn_at)
    warned = apply(task, warning, CLOCK)
    assert CLOCK.next_due(warned) == warned.accept_by
    accepted = apply(warned, event(1, "accepted", warned.accept_by), CLOCK)
    assert CLOCK.next_due(accepted) == accepted.finish_warn_at
    [overdue] = CLOCK.due(accepted, accepted.finish_by)  # the pre-warning was skipped: overdue is the latest
    late = apply(accepted, overdue, CLOCK)
    assert CLOCK.next_due(late) == late.escalate_at
    done = apply(late, event(2, "completed", late.finish_by + dt.timedelta(hours=1)), CLOCK)
    assert CLOCK.next_due(done) is None


def test_a_parked_task_raises_only_its_review_date_once():
    task = run(("accepted", {}), ("parked", {"reason": "需立项改造", "review_on": dt.date(2027, 3, 1)}))
    assert CLOCK.next_due(task) == dt.datetime(2027, 3, 1, 9, 0, tzinfo=CLOCK.calendar.tz)
    assert CLOCK.due(task, dt.datetime(2027, 2, 28, 12, 0, tzinfo=CN)) == []  # months past its limits: silent
    [review] = CLOCK.due(task, dt.datetime(2027, 3, 1, 9, 30, tzinfo=CN))
    assert (review.kind, review.limit) == ("review_due", "review")
    reviewed = apply(task, review, CLOCK)
    assert raised_alert(task, reviewed).startswith("review:review_due@") and CLOCK.next_due(reviewed) is None
    resumed = apply(reviewed, event(9, "resumed", dt.datetime(2027, 3, 2, 10, 0, tzinfo=CN)), CLOCK)
    assert apply(resumed, review, CLOCK) is resumed  # a late proposal for a resumed task: no-op
