"""The intake stage: a report from any source becomes an incident, classified and routed, in one hop.

    intake.hotline ─┐                     ┌─► incidents (keyed by incident id; the sink stores them)
    intake.grid    ─┼─► normalise, locate,├─► classified   (has a reporter: the caller stage next)
    intake.sensor  ─┤   classify, route   ├─► case-reports (anonymous and routable: the case stage)
    intake.whistle ─┘                     ├─► task-events  (a whistle's dispatches: a whistle is its own case)
                                          ├─► manual       (anonymous and not routable: the operator queue)
                                          └─► deadletters  (cannot become an incident, or a bug)

One table, `received` (incident id → hashes of its message's fields), so a reused id with other
content is a conflict, never an overwrite. The intake topics are keyed by the report's own id (the
api and `IntakeClient` produce so), so every message of one id meets the same partition and its
entry. Normalising and routing share the hop that reads the intake. PII is masked and hashed here; the
clear phone and caller name never leave this stage. Classification runs once per batch (one model
call per duty-list version in the batch), off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

from faust.types import EventT

from agents.dutylists import DutyLists
from agents.retention import Retention
from agents.wiring import Received, StageState, Wiring, finished, forget_request, set_current_event
from infra import metrics
from pipeline.classify import Classification
from pipeline.dedupe import case_key
from pipeline.dutylists import DutyBook
from pipeline.locate import Locator
from pipeline.normalize import IntakeError, conflicting_fields, content_fingerprint, parse_intake, to_incident
from pipeline.replay import history_events
from pipeline.route import route, route_history
from schemas import ClassifiedIncident, Incident, ManualReview

log = logging.getLogger(__name__)
STAGE = "intake"


class IntakeStage:
    """The stage's state and handlers; `state` names its table (`received`, see `first_with_its_id`)
    and the table's retention for the worker."""

    def __init__(self, wiring: Wiring, dutylists: DutyLists):
        self.wiring, self.dutylists = wiring, dutylists
        self.names, self.settings = names, settings = wiring.names, wiring.settings
        self.source_by_topic = {t: source for source, t in names.intakes.items()}
        self.locator = Locator(dutylists.current.registry)
        self.salt = settings.pii_salt.get_secret_value()
        # incident id → {"fields": hashes of its message's fields (no values), "at", and the topic and key
        # it came with, so a forget request reaches its partition}; leaves after the retention.
        self.received = wiring.table("received")
        self.retention = Retention(wiring, self.received, "received",
                                   lambda stored: dt.datetime.fromisoformat(json.loads(stored)["at"]),
                                   lambda incident_id, stored: came_with(json.loads(stored)))
        self.state = StageState({"received": self.received}, (self.retention,))

        @wiring.app.agent(wiring.topic(*names.intakes.values()), name=STAGE, concurrency=1)
        async def intake(stream):
            async for events in stream.take_events(settings.dispatch_batch_size,
                                                   within=settings.dispatch_batch_seconds):
                await dutylists.ready.wait()  # inside the loop: see Wiring.each_batch
                await self.handle_batch(events)

    async def handle_batch(self, events: list[EventT]) -> None:
        metrics.STAGE_IN.labels(STAGE).inc(len(events))
        parsed = [(event, incident) for event in events if not self.forgot(event)
                  and (incident := self.normalise(event)) is not None]
        try:
            classified = await asyncio.to_thread(classify_batch, self.dutylists, [i for _, i in parsed])
        except Exception:  # isolate the incident that breaks the batch: classify one by one
            log.exception("batch classification failed; classifying one by one")
            classified = [None] * len(parsed)
        handled = 0
        for (event, incident), pair in zip(parsed, classified, strict=True):
            try:
                book, result = pair or classify_batch(self.dutylists, [incident])[0]
                self.dispatch(incident, book, result)
            except Exception as exc:  # the batch is acked anyway: keep the report as a dead letter
                log.exception("routing failed")
                self.wiring.dead_letter_received(Received.alone(event), STAGE, f"internal error: {exc!r}")
                continue
            handled += 1
        self.wiring.flush()
        finished(STAGE, events, handled)

    def normalise(self, event: EventT) -> Incident | None:
        source = self.source_by_topic[event.message.topic]
        try:
            message = parse_intake(source, event.value)
            incident = to_incident(message, salt=self.salt, now=self.wiring.now(), locator=self.locator,
                                   dutylist_version=self.dutylists.current.version)
            if not self.first_with_its_id(event, incident.incident_id, content_fingerprint(message)):
                return None
        except IntakeError as exc:
            self.wiring.dead_letter_received(Received.alone(event), STAGE, str(exc))
            return None
        except Exception as exc:  # a bug must not stop the stream: dead-letter it and go on
            log.exception("normalising failed")
            self.wiring.dead_letter_received(Received.alone(event), STAGE, f"internal error: {exc!r}")
            return None
        self.wiring.send(self.names.incidents, incident.incident_id, incident)
        return incident

    def forgot(self, event: EventT) -> bool:
        """A forget request of the retention (agents/retention.py), taken here."""
        if (incident_id := forget_request(event)) is None:
            return False
        set_current_event(event)
        self.retention.forget(incident_id)
        return True

    def first_with_its_id(self, event: EventT, incident_id: str, fingerprint: dict[str, str]) -> bool:
        """A message whose source id came before with other content is a conflict: dead-lettered with
        the fields that differ, the first kept as it was. Not an update: the work it started (its
        task, its item, its street) would silently stop matching its text. A redelivery matches."""
        before = self.received.get(incident_id)
        if before is None:
            set_current_event(event)
            at = self.wiring.now()
            self.received[incident_id] = json.dumps({
                "fields": fingerprint, "at": at.isoformat(), "topic": event.message.topic,
                "key": (event.key or b"").decode(errors="replace")}).encode()
            self.retention.touched(incident_id, at)
            return True
        if fields := conflicting_fields(json.loads(before)["fields"], fingerprint):
            source = self.source_by_topic[event.message.topic]
            self.wiring.dead_letter_received(Received.alone(event), STAGE, f"conflict: incident {incident_id} came before from the same "
                                                        f"{source} id with other {', '.join(fields)}; the first is kept")
            metrics.INTAKE_CONFLICTS.labels(source).inc()
            return False
        return True

    def dispatch(self, incident: Incident, book: DutyBook, result: Classification) -> None:
        if incident.history is not None:
            self.replay(incident, book, result)
            return
        wiring, names = self.wiring, self.names
        decision = route(incident, result, book, now=wiring.now(), threshold=self.settings.classify_threshold)
        routable = not isinstance(decision, ManualReview)
        if incident.source == "whistle":  # a whistle is its own case: no merging, no repeat calls
            wiring.open_tasks(incident, decision) if routable else wiring.send_manual(decision)
        elif incident.reporter_hash:
            # To the caller stage first, keyed by reporter: a repeat call may join an open case
            # instead, even one routed under another item or street, or bound for the operator.
            wiring.send(names.classified, incident.reporter_hash, ClassifiedIncident(
                case_key=case_key(incident, decision[0].item_no) if routable else None,
                incident=incident, confidence=result.confidence,
                dispatches=decision if routable else [], review=None if routable else decision))
        elif routable:  # no caller to remember: straight to the case stage
            key = case_key(incident, decision[0].item_no)
            wiring.send(names.case_reports, key, ClassifiedIncident(
                case_key=key, incident=incident, confidence=result.confidence, dispatches=decision))
        else:
            wiring.send_manual(decision)

    def replay(self, incident: Incident, book: DutyBook, result: Classification) -> None:
        """A historical order is its own case, as its record says (no merging, no repeat calls): its
        tasks open at its own time, then the events of its record follow on the same keys, so each
        task's partition sees them after its `dispatched` event."""
        decision = route_history(incident, result, book, threshold=self.settings.classify_threshold)
        if isinstance(decision, ManualReview):
            self.wiring.send_manual(decision)
            return
        self.wiring.open_tasks(incident, decision)
        for event in history_events(incident, decision):
            self.wiring.send(self.names.task_events, event.task_id, event)


def came_with(entry: dict) -> tuple[str, bytes]:
    """The topic and key a received id's message came with: a forget request goes the same way."""
    return entry["topic"], entry["key"].encode()


def classify_batch(dutylists: DutyLists, incidents: list[Incident]) -> list[tuple[DutyBook, Classification]]:
    """One model call per duty-list version present in the batch (batching is what makes it fast)."""
    books_used = [dutylists.book_for(i) for i in incidents]
    results: dict[int, Classification] = {}
    for version in {b.version for b in books_used}:
        positions = [n for n, b in enumerate(books_used) if b.version == version]
        batch = [incidents[n] for n in positions]
        for n, result in zip(positions, dutylists.classifier_for(books_used[positions[0]]).classify_many(batch),
                             strict=True):
            results[n] = result
    return [(books_used[n], results[n]) for n in range(len(incidents))]
