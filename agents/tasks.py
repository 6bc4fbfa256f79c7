"""The task stage: every dispatched task's state, its SLA clock and alerts, and re-routing of returns.

    task-events ──► tasks ──► task-updates (event + task after it) ──► sink: tasks, task_events, dispatches
        ▲              │  ├──► alerts (pre-warning, overdue, escalation) ──► notify (agents/notify.py)
        │              │  └──► task-events `dispatched` / manual (a return re-routed)
        └── SLA timer ◄┘ (reads each task's next due instant; proposes due alerts as events)

State lives in tables keyed by task id, written only here, co-partitioned with `task-events`:
`tasks` (the task, its dispatch and its incident), and `early_task_events`: events that came before
their task's `dispatched` — a merge sent by the case stage while that dispatch is still to be read
again after a restart (docs/faust-on-tansu.md, "A partition that stops being read"). They are held, applied in
order when the dispatch comes, and dead-lettered as for an unknown task if it has not come within
`CITYOPS_UNKNOWN_TASK_WAIT_SECONDS`. What the timer and the metrics read from `tasks` is kept beside
it in memory (`Summary`), derived, rebuilt from the table after recovery.
The timer never writes a table: it sends its proposals through the topic like any other event,
so the state machine applies each once and a restart never raises an alert twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel

from agents.dutylists import DutyLists
from agents.retention import Retention
from agents.wiring import StageState, Wiring, current_message
from infra import metrics
from pipeline import ids
from pipeline.lifecycle import InvalidTransition, apply, open_task, raised_alert, unknown_task, update_of
from pipeline.retention import task_finished_at
from pipeline.route import reroute_returned
from pipeline.sla import ACCEPT_RUNNING, FINISH_RUNNING, DueIndex, SlaClock, alert_key
from schemas import Alert, Dispatch, Incident, ManualReview, TaskEvent, TaskState, Unit

log = logging.getLogger(__name__)

ALERT_KIND = {"prewarning": "prewarning", "overdue": "overdue", "escalated": "escalation", "review_due": "review_due"}
STAGE = "tasks"
RESEND_PROPOSAL_AFTER = 30.0  # real seconds: a task whose proposals are not applied by then is looked at again


class TaskStage:
    """The stage's state and handlers; `state` names its tables and retentions for the worker, and
    `summaries()` gives each task's `Summary` (see `task_figures`)."""

    def __init__(self, wiring: Wiring, dutylists: DutyLists, units: Mapping[str, Unit], ready: Callable[[], bool]):
        self.wiring, self.dutylists, self.units, self.ready = wiring, dutylists, units, ready
        self.names = names = wiring.names
        self.clock, self.sla = wiring.settings.clock(), wiring.settings.sla_clock()
        # task id → TaskRecord as JSON
        self.tasks = wiring.table("tasks")
        # task id → Summary: what the timer, /health and /metrics read, without parsing every task each
        # time. Derived from the table, so rebuilt from it when they disagree (after recovery or rebalance).
        self._summaries: dict[str, Summary] = {}
        self.due_index = DueIndex()  # the tasks by when the timer must look at them next
        self.proposed_at: dict[str, float] = {}  # task id → when its proposals went (monotonic): not sent again at once
        # Alert ids this process has sent: an applied event seen again while it runs (the timer proposing
        # again what a busy stream had not applied yet) sends its alert again only after a restart, when
        # the first send may have died with the process. Bounded: forgetting only allows a re-send.
        self.raised_here: set[str] = set()
        # A finished task leaves the table after the retention (its history is in ClickHouse).
        self.retention = Retention(wiring, self.tasks, "tasks",
                                   lambda stored: task_finished_at(TaskRecord.model_validate_json(stored).task),
                                   lambda task_id, stored: (names.task_events, task_id.encode()))
        # task id → EarlyEvents as JSON, for tasks not in `tasks` yet. Held in real seconds: the re-read
        # that brings a skipped dispatch back runs on the real clock, whatever the city's clock.
        self.early = wiring.table("early_task_events")
        self.wait = dt.timedelta(seconds=wiring.settings.unknown_task_wait_seconds)
        self.early_retention = Retention(wiring, self.early, "early_task_events",
                                         lambda stored: EarlyEvents.model_validate_json(stored).since,
                                         lambda task_id, stored: (names.task_events, task_id.encode()),
                                         keep=self.wait, now=lambda: dt.datetime.now(dt.timezone.utc))
        self.state = StageState({"tasks": self.tasks, "early_task_events": self.early},
                                (self.retention, self.early_retention))

        @wiring.app.agent(wiring.topic(names.task_events), name=STAGE, concurrency=1)
        async def task_stage(stream):
            await wiring.each_batch(stream, STAGE, TaskEvent, self.handle, refused=(InvalidTransition,),
                                    before=dutylists.ready.wait, forget=self.forget)

        @wiring.app.timer(wiring.settings.sla_check_seconds)
        async def sla_timer() -> None:
            self.propose_due_alerts()

    def summaries(self) -> dict[str, Summary]:
        if len(self._summaries) != len(self.tasks):
            self._summaries.clear()
            self.due_index.clear()
            self.proposed_at.clear()
            for task_id, stored in list(self.tasks.items()):
                self.summarise(task_id, TaskRecord.model_validate_json(stored).task)
        return self._summaries

    def summarise(self, task_id: str, task: TaskState) -> None:
        self._summaries[task_id] = summary = Summary.of(task, self.sla)
        self.due_index.set(task_id, summary.next_due)
        self.proposed_at.pop(task_id, None)
        self.retention.touched(task_id, task_finished_at(task))

    def forget(self, task_id: str) -> None:
        held = self.early.get(task_id)
        if self.early_retention.forget(task_id):  # the dispatch never came: refused as for an unknown task
            for e in EarlyEvents.model_validate_json(held).events:
                self.wiring.dead_letter(e.topic, e.partition, e.offset, e.value.encode(), STAGE,
                                        f"task {task_id}: {unknown_task(e.kind)} (held "
                                        f"{self.wait.total_seconds():.0f} s for its dispatch)", e.batch_index)
                metrics.EARLY_TASK_EVENTS.labels("dead_lettered").inc()
        if self.retention.forget(task_id):
            self._summaries.pop(task_id, None)
            self.due_index.set(task_id, None)
            self.proposed_at.pop(task_id, None)

    def handle(self, task_event: TaskEvent) -> None:
        if task_event.task_id not in self.tasks and task_event.kind != "dispatched":
            self.hold(task_event)
            return
        self.step(task_event)
        if task_event.kind == "dispatched" and (held := self.early.get(task_event.task_id)) is not None:
            self.release(task_event.task_id, EarlyEvents.model_validate_json(held))

    def hold(self, task_event: TaskEvent) -> None:
        received, stored = current_message(), self.early.get(task_event.task_id)
        held = EarlyEvents.model_validate_json(stored) if stored else EarlyEvents(since=dt.datetime.now(dt.timezone.utc))
        if any(e.event_id == task_event.event_id for e in held.events):
            return  # the same event again (a re-read): held once
        record = received.event.message
        held.events.append(EarlyEvent(event_id=task_event.event_id, kind=task_event.kind, value=received.value.decode(),
                                      topic=record.topic, partition=record.partition, offset=record.offset,
                                      batch_index=received.index))
        self.early[task_event.task_id] = held.model_dump_json().encode()
        self.early_retention.touched(task_event.task_id, held.since)
        metrics.EARLY_TASK_EVENTS.labels("held").inc()
        log.info("task %s: %s came before its dispatch; held for it (%d held)", task_event.task_id,
                 task_event.kind, len(held.events))

    def release(self, task_id: str, held: EarlyEvents) -> None:
        """The dispatch has come: the events held for it, in the order they came."""
        del self.early[task_id]
        self.early_retention.touched(task_id, None)
        for e in held.events:
            try:  # refused or failed as the stage loop would have done when it came
                self.step(TaskEvent.model_validate_json(e.value))
            except InvalidTransition as exc:
                reason = str(exc)
            except Exception as exc:
                log.exception("%s failed on a held event", STAGE)
                reason = f"internal error: {exc!r}"
            else:
                metrics.EARLY_TASK_EVENTS.labels("applied").inc()
                continue
            self.wiring.dead_letter(e.topic, e.partition, e.offset, e.value.encode(), STAGE, reason, e.batch_index)

    def step(self, task_event: TaskEvent) -> None:
        """Apply one event to its task (opening it on `dispatched`), and send what it causes."""
        stored = self.tasks.get(task_event.task_id)
        try:
            if stored is None:
                record = TaskRecord(task=open_task(task_event, self.sla), dispatch=task_event.dispatch,
                                    incident=task_event.incident)
                before, after = None, record.task
            else:
                record = TaskRecord.model_validate_json(stored)
                before, after = record.task, apply(record.task, task_event, self.sla)
                if after is before:
                    if task_event.event_id in before.applied:
                        self.send_again(before, task_event, record)
                    return  # else a timer proposal the task has moved past: not applied, nothing to store
                record = record.model_copy(update={"task": after})
        except InvalidTransition as exc:
            raise InvalidTransition(f"task {task_event.task_id}: {exc}") from None
        self.tasks[after.task_id] = record.model_dump_json().encode()
        self.summarise(after.task_id, after)
        self.send_update(after, task_event)
        metrics.TASK_EVENTS.labels(task_event.kind).inc()
        if before is not None and (key := raised_alert(before, after)):
            self.raise_alert(after, task_event, key)
        if task_event.kind == "returned" and after.role == "primary":
            self.reroute(after, task_event, record.dispatch, record.incident)

    def send_update(self, task: TaskState, event: TaskEvent) -> None:
        self.wiring.send(self.names.task_updates, task.task_id, update_of(task, event))

    def send_again(self, task: TaskState, event: TaskEvent, record: TaskRecord) -> None:
        """An event applied before, redelivered after a restart: the table's changelog may have reached
        the broker and what the event caused not (a process killed between the two), and the task
        will not cause it again. So all of it goes again, under the same ids: the update, with the task
        as it stands (the sink keeps one row per event and the newest task); the alert it raised, unless
        this process sent it (webhooks are at least once, de-duplicated on the alert id); the re-routing
        of a return."""
        self.send_update(task, event)
        if event.kind in ALERT_KIND and event.due_at is not None and (key := alert_key(event)) in task.alerts_raised \
                and sla_alert_id(task.task_id, key) not in self.raised_here:
            self.raise_alert(task, event, key)
        if event.kind == "returned" and task.role == "primary":
            self.reroute(task, event, record.dispatch, record.incident)

    def raise_alert(self, task: TaskState, cause: TaskEvent, key: str) -> None:
        kind = ALERT_KIND[cause.kind]
        to_unit = task.unit
        if kind == "escalation":  # to the supervising unit (default: the parent, e.g. a street's district)
            unit = self.units.get(task.unit)
            to_unit = (unit.supervisor or unit.parent or "") if unit else ""
        alert = Alert(alert_id=sla_alert_id(task.task_id, key), kind=kind, item_no=task.item_no,
                      to_unit=to_unit, raised_at=self.clock.now(), task_id=task.task_id, incident_id=task.incident_id,
                      unit=task.unit, limit=cause.limit, due_at=cause.due_at)
        self.wiring.send(self.names.alerts, alert.alert_id, alert)
        if len(self.raised_here) >= 100_000:
            self.raised_here.clear()
        self.raised_here.add(alert.alert_id)
        metrics.ALERTS.labels(kind).inc()
        metrics.SLA_ALERTS.labels(kind, to_unit).inc()

    def reroute(self, task: TaskState, returned: TaskEvent, dispatch: Dispatch, incident: Incident | None) -> None:
        if incident is None:
            log.warning("task %s returned but its incident is not known here: nothing to re-route", task.task_id)
            return
        decision = reroute_returned(incident, dispatch, returned.reason or "other", returned.note,
                                    self.dutylists.book_for(incident), now=self.clock.now())
        if isinstance(decision, ManualReview):
            self.wiring.send_manual(decision)
            metrics.REROUTED.labels("operator").inc()
        else:
            self.wiring.open_tasks(incident, decision)
            metrics.REROUTED.labels("candidate").inc()

    def propose_due_alerts(self) -> None:
        """The SLA timer: propose the alerts that are due. Runs on every worker over the tasks it holds,
        touching only the due ones (`DueIndex`), so a tick costs the same with 100 or 1,000,000 open tasks."""
        if not self.ready():
            return
        now, started = self.clock.now(), time.monotonic()
        self.summaries()  # rebuilds the index after recovery or a rebalance
        for task_id, sent in list(self.proposed_at.items()):
            # Not applied yet (lost, a busy stream, or a task that moved past it): look again.
            if started - sent >= RESEND_PROPOSAL_AFTER:
                del self.proposed_at[task_id]
                if (summary := self._summaries.get(task_id)) is not None:
                    self.due_index.set(task_id, summary.next_due)
        for task_id in self.due_index.pop_due(now):
            if (stored := self.tasks.get(task_id)) is None:
                continue
            for proposal in self.sla.due(TaskRecord.model_validate_json(stored).task, now):
                self.wiring.send(self.names.task_events, task_id, proposal)
            # Applying a proposal re-indexes the task (`summarise`); until then it waits here.
            self.proposed_at[task_id] = started
        self.wiring.flush()


def sla_alert_id(task_id: str, key: str) -> str:
    return ids.stable_id("sla-alert", task_id, key)


class EarlyEvent(BaseModel):
    """An event held for its task's dispatch, with where it came from (for its dead letter)."""

    event_id: str
    kind: str
    value: str  # the message as it came (valid JSON of a TaskEvent)
    topic: str
    partition: int
    offset: int
    batch_index: int | None = None  # its place in a batch record (schemas/batches.py)


class EarlyEvents(BaseModel):
    """An `early_task_events` table value."""

    since: dt.datetime  # when the first was held (real time): the wait counts from it
    events: list[EarlyEvent] = []


class TaskRecord(BaseModel):
    """A `tasks` table value: the task, and the dispatch and report it came from (for re-routing)."""

    task: TaskState
    dispatch: Dispatch
    incident: Incident | None = None


@dataclass(frozen=True)
class Summary:
    status: str
    unit: str
    accept_by: dt.datetime | None
    finish_by: dt.datetime | None
    next_due: dt.datetime | None  # when the SLA timer must look at the task again

    @classmethod
    def of(cls, task: TaskState, sla: SlaClock) -> Summary:
        return cls(task.status, task.unit, task.accept_by, task.finish_by, sla.next_due(task))


def task_figures(summaries: dict[str, Summary], now: dt.datetime) -> dict:
    """Tasks on this worker by status, and open tasks past a deadline by unit and the limit they broke
    (for /health and metrics). Each task counts once: under "finish" when past its finish deadline
    (the one overdue definition, as the SLA board's `overdue_open`), else under "accept" when not yet
    accepted past the accept limit — so a unit's overdue tasks never outnumber its open ones."""
    by_status: Counter = Counter()
    overdue: Counter = Counter()
    for s in summaries.values():
        by_status[s.status] += 1
        if s.status in FINISH_RUNNING and s.finish_by and s.finish_by < now:
            overdue[(s.unit, "finish")] += 1
        elif s.status in ACCEPT_RUNNING and s.accept_by and s.accept_by < now:
            overdue[(s.unit, "accept")] += 1
    return {"by_status": dict(by_status), "overdue": overdue}
