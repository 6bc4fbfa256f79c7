"""The SLA clock: a task's deadlines in working time, and which alerts are due.

- Accept (接单) within N working hours of the dispatch; finish (办结) within N working days, plus
  granted extensions, plus the working time the clock stood still (extension pending, parked).
- A pre-warning at `prewarning_fraction` of each limit, overdue at 100%, escalation to the
  supervising unit `escalate_after_days` working days after the finish deadline.
- A parked (挂账) task raises none of these; on its review date it raises `review_due` once.
- A replayed historical order (`cityops replay`) raises nothing: its record says what became of it.
- Per limit only the latest stage that is due is proposed: a worker that was down for a day
  raises "overdue", not a stale pre-warning followed by it.

Pure: the worker's timer asks `due(task, now)` and sends the proposals through the task stream,
where the state machine applies each once (its key lands in `alerts_raised`).
"""

from __future__ import annotations

import datetime as dt
import heapq
from dataclasses import dataclass, field

from pipeline import ids
from pipeline.workcalendar import WorkCalendar
from schemas import TaskEvent, TaskState

# The statuses in which each limit's clock runs. Past its finish deadline in one of FINISH_RUNNING,
# a task is overdue: the one definition the SLA board, the screen and the worker's metrics share.
ACCEPT_RUNNING: tuple[str, ...] = ("dispatched",)
FINISH_RUNNING: tuple[str, ...] = ("dispatched", "accepted")

DEFAULT_PREWARNING_FRACTION = 0.8
DEFAULT_ESCALATE_AFTER_DAYS = 2.0


def alert_key(event: TaskEvent) -> str:
    return f"{event.limit}:{event.kind}@{event.due_at.isoformat()}"


@dataclass
class SlaClock:
    calendar: WorkCalendar
    prewarning_fraction: float = DEFAULT_PREWARNING_FRACTION
    escalate_after_days: float = DEFAULT_ESCALATE_AFTER_DAYS

    def deadlines(self, task: TaskState) -> dict[str, dt.datetime]:
        cal, start = self.calendar, task.dispatched_at
        accept_seconds = task.accept_within_hours * 3600
        if task.due_at is None:
            finish_by = cal.add_working_days(start, task.finish_within_days + task.extension_days)
        else:  # a replayed order: the deadline its record had, moved only by what extends it
            finish_by = cal.add_working_days(task.due_at, task.extension_days) if task.extension_days else task.due_at
        if task.paused_seconds:
            finish_by = cal.add_working_hours(finish_by, task.paused_seconds / 3600)
        # The pre-warning comes at the fraction of the working time the task may really use.
        usable = cal.working_seconds_between(start, finish_by) - task.paused_seconds
        return {
            "accept_by": cal.add_working_hours(start, accept_seconds / 3600),
            "accept_warn_at": cal.add_working_hours(start, self.prewarning_fraction * accept_seconds / 3600),
            "finish_by": finish_by,
            "finish_warn_at": cal.add_working_hours(
                start, (self.prewarning_fraction * usable + task.paused_seconds) / 3600),
            "escalate_at": cal.add_working_days(finish_by, self.escalate_after_days),
        }

    def _stages(self, task: TaskState) -> list[tuple[str, list[tuple[str, dt.datetime | None]]]]:
        """Per limit that is running, its alert stages in order (none while the clock is stopped)."""
        stages: list[tuple[str, list[tuple[str, dt.datetime | None]]]] = []
        if task.replayed:  # history: its deadlines passed long ago, and its record says what became of it
            return stages
        if task.status in ACCEPT_RUNNING:
            stages.append(("accept", [("prewarning", task.accept_warn_at), ("overdue", task.accept_by)]))
        if task.status in FINISH_RUNNING:
            stages.append(("finish", [("prewarning", task.finish_warn_at), ("overdue", task.finish_by),
                                      ("escalated", task.escalate_at)]))
        if task.status == "parked" and task.review_on is not None:  # 挂账: looked at again on its date
            stages.append(("review", [("review_due", dt.datetime.combine(
                task.review_on, self.calendar.office_hours[0][0], self.calendar.tz))]))
        return stages

    def next_due(self, task: TaskState) -> dt.datetime | None:
        """When the timer must look at this task next: the first stage after the last one raised."""
        upcoming = []
        for limit, steps in self._stages(task):
            raised = [n for n, (kind, due_at) in enumerate(steps)
                      if due_at is not None and f"{limit}:{kind}@{due_at.isoformat()}" in task.alerts_raised]
            for kind, due_at in steps[(raised[-1] + 1 if raised else 0):]:
                if due_at is not None and not (kind == "escalated" and task.escalated_at is not None):
                    upcoming.append(due_at)
                    break
        return min(upcoming, default=None)

    def due(self, task: TaskState, now: dt.datetime) -> list[TaskEvent]:
        """The alert events due at `now` and not raised yet (none while the clock is stopped)."""
        proposals = []
        for limit, steps in self._stages(task):
            passed = [(kind, due_at) for kind, due_at in steps if due_at is not None and due_at <= now]
            if not passed:
                continue
            kind, due_at = passed[-1]
            if kind == "escalated" and task.escalated_at is not None:
                continue  # an operator escalated it already
            event = TaskEvent(
                event_id=ids.stable_id("sla", task.task_id, limit, kind, due_at.isoformat()), task_id=task.task_id,
                incident_id=task.incident_id, unit=task.unit, kind=kind, at=now, by="sla", limit=limit,
                due_at=due_at, note=f"{limit} limit {'passed' if kind != 'prewarning' else 'nearly reached'}")
            if alert_key(event) not in task.alerts_raised:
                proposals.append(event)
        return proposals

    def working_hours(self, start: dt.datetime | None, end: dt.datetime | None) -> float | None:
        if start is None or end is None:
            return None
        return self.calendar.working_seconds_between(start, end) / 3600


@dataclass
class DueIndex:
    """Tasks by the instant the SLA timer must next look at them (`SlaClock.next_due`): a heap, so
    each tick touches only the tasks that are due, however many are held. An entry replaced by a
    newer instant stays in the heap until it surfaces and is skipped (cheaper than removing it)."""

    _heap: list[tuple[dt.datetime, str]] = field(default_factory=list)
    _next: dict[str, dt.datetime] = field(default_factory=dict)  # task id → its one live entry

    def set(self, task_id: str, next_due: dt.datetime | None) -> None:
        """Index the task at `next_due`; None takes it out (nothing left to watch)."""
        if next_due is None:
            self._next.pop(task_id, None)
            return
        if self._next.get(task_id) == next_due:
            return
        self._next[task_id] = next_due
        heapq.heappush(self._heap, (next_due, task_id))
        if len(self._heap) > 2 * len(self._next) + 1024:  # mostly replaced entries: rebuild
            self._heap = [(due, task) for task, due in self._next.items()]
            heapq.heapify(self._heap)

    def pop_due(self, now: dt.datetime) -> list[str]:
        """The tasks due at `now`, taken out of the index (set them again to be looked at again)."""
        due_now = []
        while self._heap and self._heap[0][0] <= now:
            due, task_id = heapq.heappop(self._heap)
            if self._next.get(task_id) == due:
                del self._next[task_id]
                due_now.append(task_id)
        return due_now

    def clear(self) -> None:
        self._heap.clear()
        self._next.clear()

    def __len__(self) -> int:
        return len(self._next)
