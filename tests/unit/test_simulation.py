"""The simulated actors: every plan is a valid life for the state machine, and the delays follow the data."""

from __future__ import annotations

import datetime as dt
import random
import statistics
from collections import Counter

from devtools.shared_data import load_reply_days
from infra.settings import Settings
from pipeline.lifecycle import apply, open_task
from pipeline.simulation import BOARD_LIMIT_DAYS, plan, to_event
from pipeline.sla import SlaClock
from pipeline.workcalendar import WorkCalendar
from schemas import Dispatch, TaskEvent

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
CLOCK = SlaClock(WorkCalendar())


def dispatch(n: int, role: str = "primary", finish_days: float = 5) -> Dispatch:
    return Dispatch(dispatch_id=f"d{n}", incident_id=f"i{n}", unit="cgj", role=role, item_no="CJ-029", item_title="t",
                    top_class="城乡建设", dutylist_version="v", legal_basis="b", confidence=1, reason="", dispatched_at=T0,
                    accept_within_hours=2, finish_within_days=finish_days)


def test_every_plan_is_a_valid_life_and_the_mix_is_plausible():
    rng = random.Random(3)
    reply_days = [rng.lognormvariate(2.4, 1.2) for _ in range(500)]
    ends: Counter = Counter()
    for n in range(600):
        d = dispatch(n, role="primary" if n % 4 else "cooperating")
        task = open_task(TaskEvent(event_id=f"e{n}", task_id=d.dispatch_id, incident_id=d.incident_id, unit="cgj",
                                   kind="dispatched", at=T0, dispatch=d), CLOCK)
        steps = plan(d, rng, reply_days)
        assert [s.after for s in steps] == sorted(s.after for s in steps)
        for k, step in enumerate(steps, start=1):
            task = apply(task, to_event(d, k, step, T0 + step.after), CLOCK)  # raises if impossible
        ends[task.status] += 1
    assert ends["evaluated"] + ends["closed"] > 0.8 * 600  # cooperating tasks end closed, not evaluated
    assert 0.02 * 450 < ends["returned"] < 0.12 * 450 and ends["parked"] > 0


def test_finish_delays_follow_the_real_replies_scaled_to_the_limit():
    reply_days = load_reply_days(Settings().messages_dir / "replied.jsonl")
    if not reply_days:
        import pytest
        pytest.skip("../shared/data/zh-gov-messages/replied.jsonl absent")
    assert 10 < statistics.median(reply_days) < 12.5  # the data: median ≈ 11 days
    rng = random.Random(5)
    ratios = []
    for n in range(2000):
        d = dispatch(n, finish_days=5)
        steps = plan(d, rng, reply_days)
        done = [s for s in steps if s.kind == "completed"]
        accepted = [s for s in steps if s.kind == "accepted"]
        if done and accepted and not any(s.kind == "rework" for s in steps):
            ratios.append((done[0].after - accepted[0].after) / dt.timedelta(days=5 * 7 / 5))
    # the median reply (11 of 15 days) lands at ≈ 11/15 of the limit
    assert abs(statistics.median(ratios) - statistics.median(reply_days) / BOARD_LIMIT_DAYS) < 0.08
