"""The operator queue: every review waits here for an operator's ruling, whichever stage sent it.

    manual (keyed by incident id) ──► queue ──► table `waiting`  (the incident and its review)
    manual-decisions (keyed by incident id) ──► operator ──► task-events: `dispatched` (the ruling's dispatches)
                                                   ├──► manual (a ruling refused, e.g. 摊派: back in the queue)
                                                   └──  (close: out of the queue, no task; the sink keeps the ruling)
                               table `routing`: incident id → the latest routing seen here (unit, manual or
                                                closed; attempt; when), forgotten a retention after it
                                                left the queue (agents/retention.py)

Reviews come from the intake stage (low confidence, no item, 摊派 refused), the caller and case
stages (repeat calls), and the task stage (a return that cannot be re-routed). Both topics are keyed
by incident id with the same partition count, so an incident's entry sits on the worker that gets
its ruling. A review that arrives after an operator dispatched the incident at that routing or a
later one is stale and not queued again.

A ruling's dispatches reach the broker before its entry leaves `waiting` (agents/wiring.py: why and
where a stage waits for its sends): a worker killed between the two finds the entry again when the
ruling comes again, and dispatches it again under the same ids, where the other order lost the
dispatch for good.
The routing names the ruling that took the incident out of the queue, so that ruling redelivered
afterwards is recognised, not dead-lettered as "not waiting".
"""

from __future__ import annotations

import datetime as dt
import json

from agents.dutylists import DutyLists
from agents.retention import Retention
from agents.wiring import StageState, Wiring
from pipeline.route import dispatch_item
from schemas import Dispatch, Incident, ManualReview, OperatorDecision


class NotWaiting(ValueError):
    """An operator ruled on an incident that is not in the queue."""


class QueueStage:
    """The queue and operator stages over one state: `waiting` (incident id → the incident and its
    review) and `routing` (incident id → its latest routing); `state` names both for the worker."""

    def __init__(self, wiring: Wiring, dutylists: DutyLists):
        self.wiring, self.dutylists = wiring, dutylists
        names = wiring.names
        self.waiting = wiring.table("waiting_for_operator")
        self.routing = wiring.table("routing")
        # A routing leaves after the retention once the incident has left the queue (dispatched or closed).
        self.routing_retention = Retention(wiring, self.routing, "routing", lambda stored: routed_at(json.loads(stored)),
                                           lambda incident_id, stored: (names.manual, incident_id.encode()))
        self.state = StageState({"waiting_for_operator": self.waiting, "routing": self.routing},
                                (self.routing_retention,))

        @wiring.app.agent(wiring.topic(names.manual), name="queue", concurrency=1)
        async def queue_stage(stream):
            await wiring.each_batch(stream, "queue", ManualReview, self.hold, forget=self.routing_retention.forget)

        @wiring.app.agent(wiring.topic(names.manual_decisions), name="operator", concurrency=1)
        async def operator_stage(stream):
            await wiring.each_batch(stream, "operator", OperatorDecision, self.rule, refused=(NotWaiting,),
                                    before=dutylists.ready.wait)

    def record_route(self, incident_id: str, decision: list[Dispatch] | ManualReview | OperatorDecision,
                     attempt: int = 0, ruling: OperatorDecision | None = None) -> None:
        if isinstance(decision, OperatorDecision):
            to, ruling = "closed", decision  # a close is its own ruling
        elif isinstance(decision, ManualReview):
            to, attempt = "manual", decision.attempt
        else:
            to, attempt = f"{decision[0].unit} {decision[0].item_no}@{decision[0].dutylist_version}", decision[0].attempt
        at = self.wiring.now()
        route = {"to": to, "attempt": attempt, "at": at.isoformat()}
        if ruling is not None:  # what took it out of the queue: a redelivered ruling is recognised (`rule`)
            route["ruling"] = ruling.decision_id
        self.routing[incident_id] = json.dumps(route, ensure_ascii=False).encode()
        self.routing_retention.touched(incident_id, None if to == "manual" else at)

    def dispatched_since(self, review: ManualReview) -> bool:
        route = json.loads(self.routing.get(review.incident_id) or "null")
        return route is not None and route["to"] != "manual" and route["attempt"] >= review.attempt

    def hold(self, review: ManualReview) -> None:
        if review.incident is None or self.dispatched_since(review):
            return
        self.waiting[review.incident_id] = json.dumps(
            {"incident": review.incident.model_dump(mode="json"),
             "review": review.model_dump(mode="json", exclude={"incident"})}, ensure_ascii=False).encode()
        self.record_route(review.incident_id, review)

    async def rule(self, ruling: OperatorDecision) -> None:
        entry = self.waiting.get(ruling.incident_id)
        if entry is None:
            if self.ruled_by(ruling.incident_id) == ruling.decision_id:
                return  # this ruling again (redelivered after a restart): applied, its dispatches on the broker
            raise NotWaiting(f"incident {ruling.incident_id} is not waiting for an operator (unknown, or already "
                             "dispatched)")
        held = json.loads(entry)
        if ruling.action == "close":
            self.record_route(ruling.incident_id, ruling, held["review"]["attempt"])
            del self.waiting[ruling.incident_id]
            return
        incident = Incident.model_validate(held["incident"])
        decision = dispatch_item(incident, ruling.item_no, self.dutylists.book_for(incident), now=self.wiring.now(),
                                 reason=f"operator {ruling.operator}: {ruling.note}".strip(": "),
                                 units=ruling.units, attempt=held["review"]["attempt"])
        if isinstance(decision, ManualReview):
            self.wiring.send_manual(decision)  # refused (摊派, unknown item): the queue holds it again, with the reason
            self.record_route(incident.incident_id, decision)
            return
        # On the broker before the entry leaves (see the module's doc); a failed send raises, and the
        # incident stays in the queue.
        await self.wiring.sent(self.wiring.open_tasks(incident, decision))
        self.record_route(incident.incident_id, decision, ruling=ruling)
        del self.waiting[incident.incident_id]

    def ruled_by(self, incident_id: str) -> str | None:
        """The ruling that took the incident out of the queue (None: still waiting, unknown, or routed
        without one)."""
        return json.loads(self.routing.get(incident_id) or "{}").get("ruling")


def routed_at(route: dict) -> dt.datetime | None:
    """When an incident's routing last changed, once it has left the queue (None: still waiting, or a
    routing recorded before this was kept)."""
    return dt.datetime.fromisoformat(route["at"]) if route["to"] != "manual" and "at" in route else None
