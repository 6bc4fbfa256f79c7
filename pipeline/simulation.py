"""Simulated departments, grid workers, operators and reporters, for demos and load: what each does
with a dispatched task, and when. Pure: `plan()` gives a task's future events as offsets in
simulated time; `devtools.simulator` plays them on the `task-events` topic.

Delays to finish come from the real reply times of the city's message board
(`replied.jsonl`: reply_time − time; median 11 days, 90th percentile 41 days, a long tail). The
board's replies are read as answers to a 15-day limit, so a reply as slow as the data's 15 days
lands exactly on the item's own finish limit: the spread and the tail are real, the scale follows
the duty list. Everything else (accept delays, return and rework rates, scores) is an assumption
stated here, chosen to resemble what city platforms publish (returns a few per cent, satisfaction
around 90%).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from pipeline import ids
from schemas import Dispatch, TaskEvent

BOARD_LIMIT_DAYS = 15.0
WORKING_TO_CALENDAR = 7 / 5  # a limit of N working days spans about 1.4 N calendar days


@dataclass(frozen=True)
class Behaviour:
    return_rate: float = 0.06  # primary dispatches returned (退单) on the first routing
    return_for_area: float = 0.3  # of returns: 属地不符 (else 职能不符)
    accept_mean_hours: float = 1.0  # exponential; a tenth of units are slow (×4)
    slow_unit_share: float = 0.1
    extension_rate: float = 0.08
    extension_approved: float = 0.8
    park_rate: float = 0.02
    rework_rate: float = 0.08  # 核查 finds it not done
    supervise_overdue: float = 0.5  # the operations centre supervises (督办) half the tasks it sees late
    satisfied: tuple[float, float, float] = (0.08, 0.17, 0.75)  # 不满意, 基本满意, 满意 when on time
    satisfied_late: tuple[float, float, float] = (0.25, 0.35, 0.40)


@dataclass(frozen=True)
class Step:
    after: dt.timedelta  # simulated time after the dispatch
    kind: str
    fields: dict = field(default_factory=dict)


def plan(dispatch: Dispatch, rng: random.Random, reply_days: list[float],
         behaviour: Behaviour = Behaviour()) -> list[Step]:
    """The events this task will see, in order. Offsets are simulated calendar time."""
    b = behaviour
    hours = dt.timedelta(hours=1)
    slow = rng.random() < b.slow_unit_share
    accept_after = hours * rng.expovariate(1 / (b.accept_mean_hours * (4 if slow else 1)))
    if dispatch.role == "primary" and dispatch.attempt == 0 and rng.random() < b.return_rate:
        reason = "属地不符" if rng.random() < b.return_for_area else "职能不符"
        return [Step(accept_after, "returned", {"reason": reason, "note": "不属本单位职责" if reason == "职能不符"
                                                 else "事发地不在本辖区"})]
    steps = [Step(accept_after, "accepted")]
    limit = dt.timedelta(days=dispatch.finish_within_days * WORKING_TO_CALENDAR)
    sample = rng.choice(reply_days) if reply_days else rng.expovariate(1 / 11)
    finish_after = accept_after + limit * (sample / BOARD_LIMIT_DAYS)
    if rng.random() < b.park_rate:  # needs a construction project: parked, not finished in the demo
        steps.append(Step(accept_after + (finish_after - accept_after) / 2, "parked",
                          {"reason": "需立项改造，纳入年度计划", "review_on": None}))
        return steps
    if finish_after - accept_after > 6 * hours and rng.random() < b.extension_rate:
        asked = accept_after + (finish_after - accept_after) / 3
        steps.append(Step(asked, "extension_requested", {"note": "需协调多个部门"}))
        if rng.random() < b.extension_approved:
            steps.append(Step(asked + 2 * hours, "extension_approved", {"days": dispatch.finish_within_days}))
        else:
            steps.append(Step(asked + 2 * hours, "extension_refused"))
    late = finish_after - accept_after > limit
    if finish_after - accept_after > limit + 2 * hours and rng.random() < b.supervise_overdue:
        steps.append(Step(accept_after + limit + hours, "supervised", {"note": "超期督办"}))
    steps.append(Step(finish_after, "completed", {"result": "已现场处置完毕", "photos": ["https://img.example/after.jpg"]}))
    verify_after = finish_after + hours * rng.expovariate(1 / 4)
    if rng.random() < b.rework_rate:
        steps.append(Step(verify_after, "rework", {"reason": "核查未通过：现场问题仍在"}))
        finish_after = verify_after + dt.timedelta(days=1) * rng.random()
        steps.append(Step(finish_after, "completed", {"result": "返工后处置完毕"}))
        verify_after = finish_after + hours * rng.expovariate(1 / 4)
        late = True
    steps.append(Step(verify_after, "verified", {"note": "网格员现场核查通过"}))
    steps.append(Step(verify_after + hours, "closed"))
    if dispatch.role == "primary":  # the reporter scores the answer, not each cooperating unit
        weights = b.satisfied_late if late else b.satisfied
        score = rng.choices((1, 2, 3), weights=weights)[0]
        steps.append(Step(verify_after + hours + hours * rng.expovariate(1 / 12), "evaluated", {"score": score}))
    return sorted(steps, key=lambda s: s.after)  # supervision may fall between an extension's request and ruling


def to_event(dispatch: Dispatch, n: int, step: Step, at: dt.datetime) -> TaskEvent:
    """Step `n` of the plan as a task event stamped `at`; the id is fixed by task and step, so
    replaying the simulator sends nothing the task stage has not already applied."""
    fields = dict(step.fields)
    if step.kind == "parked":
        fields["review_on"] = (at + dt.timedelta(days=30)).date()
    by = {"verified": "grid-worker", "rework": "grid-worker", "closed": "ops-centre", "supervised": "ops-centre",
          "extension_approved": "ops-centre", "extension_refused": "ops-centre", "evaluated": "reporter"}
    return TaskEvent(event_id=ids.stable_id("simulated", dispatch.dispatch_id, n, step.kind),
                     task_id=dispatch.dispatch_id, incident_id=dispatch.incident_id, unit=dispatch.unit,
                     kind=step.kind, at=at, by=by.get(step.kind, dispatch.unit), **fields)
