"""The cityops worker: intake → normalise → incidents → dispatch → dispatches/task-events → ClickHouse.

Rules this file keeps (see the README's "Faust on the embedded broker"):
- every agent runs with concurrency=1 (faust-streaming #606 loses data above 1);
- a handler never raises: each failure becomes a DeadLetter and the agent goes on;
- at-least-once delivery, never `exactly_once` (the embedded broker shows aborted records);
  every output has a deterministic id, so redelivery is absorbed downstream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.streams import _current_event  # no public setter; see the dispatch agent
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from agents.tasks import TaskRecord, add_task_stage, task_figures
from agents.topics import TopicNames
from infra import metrics
from infra.broker import true_end_offsets
from infra.settings import Settings
from infra.store import Store
from pipeline import ids
from pipeline.classify import Classification, Classifier
from pipeline.dedupe import Deduper, MergePolicy, RecentReport, case_key, follow_repeat_calls, item_policies
from pipeline.dutylists import DutyBook, DutyBooks
from pipeline.hotspots import HotspotDetector
from pipeline.lifecycle import OPEN
from pipeline.locate import Locator
from pipeline.normalize import IntakeError, parse_intake, to_incident
from pipeline.route import dispatch_item, route
from pipeline.textmodel import TopClassModel
from schemas import (Alert, ClassifiedIncident, DeadLetter, Dispatch, DutyListVersion, Incident, ManualReview,
                     OperatorDecision, TaskEvent, TaskUpdate, WebhookAttempt, describe_validation_error)

log = logging.getLogger(__name__)


def create_app(settings: Settings, store: Store, bootstrap: DutyBook, model: TopClassModel | None) -> faust.App:
    """The worker. `bootstrap` is the duty list in force until a version is published on the topic;
    `model` the trained text model (None: keywords alone, and more incidents for the operators)."""
    servers = settings.kafka_bootstrap_servers
    if not servers:
        raise ValueError("the worker needs KAFKA_BOOTSTRAP_SERVERS (cityops worker/demo start a broker when unset)")
    if settings.kafka_flavor == "tansu":
        from infra.broker import patch_faust_highwaters

        patch_faust_highwaters(servers)

    app = faust.App(
        f"{settings.topic_prefix}{settings.app_id}",
        broker=[f"kafka://{s.strip()}" for s in servers.split(",")],
        store="memory://",
        datadir=str(settings.data_dir / "faust"),  # default: a directory in the cwd
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        broker_rebalance_timeout=settings.session_timeout_seconds,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_in_thread=False,
    )
    names = TopicNames(settings.topic_prefix)
    now = settings.clock().now  # real time, or the scaled clock of a demo or simulation

    def topic(*topic_names: str) -> faust.TopicT:
        return app.topic(*topic_names, key_serializer="raw", value_serializer="raw")

    incidents_topic = topic(names.incidents)
    dispatches_topic = topic(names.dispatches)
    task_events_topic = topic(names.task_events)
    manual_topic = topic(names.manual)
    dead_letters_topic = topic(names.dead_letters)
    classified_topic = topic(names.classified)
    case_reports_topic = topic(names.case_reports)
    alerts_topic = topic(names.alerts)
    source_by_topic = {t: source for source, t in names.intakes.items()}

    # incident id → the latest routing decision, {"to": "unit item@version" or "manual", "attempt": n}
    # (the case stage may still merge a first routing into an open case). Setting a key is idempotent,
    # so a redelivered incident leaves the table as it was; this is what the restart test checks.
    routing = app.Table("routing", default=None, key_type=str, value_type=str, partitions=settings.topic_partitions)
    # incident id → {"incident": …, "review": …} as JSON, while it waits for an operator. Written from the
    # manual stream and read from the decisions stream: both keyed by incident id with the same
    # partition count, so a key's entry is on the worker that gets its decision.
    waiting = app.Table("waiting_for_operator", default=None, key_type=str, value_type=str,
                        partitions=settings.topic_partitions)

    # case key (item and street) → {"cases": open cases, "hotspots": recent reports per place}, as
    # JSON. Written only by the case stage, whose topic is keyed by case key: co-partitioned.
    cases = app.Table("cases", default=None, key_type=str, value_type=str, partitions=settings.topic_partitions)
    # reporter hash → the reporter's recent reports (the case key each went to), as JSON. Written
    # only by the caller stage, whose topic is keyed by reporter. A reporter's entry is pruned when
    # they report again; entries of reporters who never do stay (like finished tasks: no retention yet).
    callers = app.Table("callers", default=None, key_type=str, value_type=str, partitions=settings.topic_partitions)

    books = DutyBooks(bootstrap)
    dutylists_ready = asyncio.Event()  # set once the published versions have been read
    classifiers: dict[str, Classifier] = {}
    locator = Locator(bootstrap.registry)
    salt = settings.pii_salt.get_secret_value()

    def book_for(incident: Incident) -> DutyBook:
        book = books.get(incident.dutylist_version)
        if book is None:  # stamped by a worker that has seen a version this one has not (yet)
            log.warning("duty list %s unknown here; routing by %s", incident.dutylist_version, books.current.version)
            book = books.current
        return book

    def classifier_for(book: DutyBook) -> Classifier:
        if book.version not in classifiers:
            classifiers[book.version] = Classifier(book, model)
        return classifiers[book.version]

    async def send(target: faust.TopicT, key: str, message: BaseModel) -> None:
        await target.send(key=key.encode(), value=message.model_dump_json().encode())

    async def dead_letter(topic_name: str, partition: int, offset: int, value: bytes | None, stage: str, reason: str) -> None:
        letter = DeadLetter(
            dead_letter_id=ids.dead_letter_id(topic_name, partition, offset, stage),
            topic=topic_name, partition=partition, offset=offset, stage=stage, reason=reason,
            payload=(value or b"").decode("utf-8", errors="replace"), failed_at=now(),
        )
        await send(dead_letters_topic, letter.dead_letter_id, letter)
        metrics.STAGE_FAILED.labels(stage).inc()
        metrics.DEAD_LETTERS.labels(stage).inc()
        # The reason names fields, never values, so it is safe to log.
        log.warning("dead letter %s[%d]@%d stage=%s: %s", topic_name, partition, offset, stage, reason)

    async def dead_letter_event(event: EventT, stage: str, reason: str) -> None:
        msg = event.message
        await dead_letter(msg.topic, msg.partition, msg.offset, event.value, stage, reason)

    def finished(stage: str, event: EventT) -> None:
        now = time.time()
        metrics.STAGE_OUT.labels(stage).inc()
        metrics.STAGE_LAST_PROCESSED.labels(stage).set(now)
        metrics.STAGE_LATENCY.labels(stage).observe(max(0.0, now - event.message.timestamp))

    async def send_manual(review: ManualReview) -> None:
        await send(manual_topic, review.incident_id, review)
        metrics.MANUAL_REVIEWS.labels(str(review.tanpai_refused).lower()).inc()

    def hold_for_operator(review: ManualReview) -> None:
        waiting[review.incident_id] = json.dumps({"incident": review.incident.model_dump(mode="json"),
                                                  "review": review.model_dump(mode="json", exclude={"incident"})},
                                                 ensure_ascii=False)

    async def each_event(stream, stage: str, model: type[BaseModel], handle: Callable[[Any], Awaitable[None]],
                         refused: tuple[type[Exception], ...] = ()) -> None:
        """The per-event stage loop: parse, handle, and dead-letter what fails with its reason — a
        validation error, a refusal the stage explains (`refused`), or a bug — then go on."""
        async for event in stream.events():
            metrics.STAGE_IN.labels(stage).inc()
            try:
                message = model.model_validate_json(event.value)
            except ValidationError as exc:
                await dead_letter_event(event, stage, describe_validation_error(exc))
                continue
            try:
                await handle(message)
            except refused as exc:
                await dead_letter_event(event, stage, str(exc))
                continue
            except Exception as exc:  # a bug must not stop the stream
                log.exception("%s failed", stage)
                await dead_letter_event(event, stage, f"internal error: {exc!r}")
                continue
            finished(stage, event)

    async def emit(incident: Incident, decision: list[Dispatch] | ManualReview) -> None:
        if isinstance(decision, ManualReview):
            await send_manual(decision)  # the queue agent holds it for the operator
            record_route(incident.incident_id, decision)
            return
        await send_dispatches(incident, decision)
        if incident.incident_id in waiting:
            del waiting[incident.incident_id]
        record_route(incident.incident_id, decision)

    def record_route(incident_id: str, decision: list[Dispatch] | ManualReview) -> None:
        """Only on the incident's partition: the dispatcher, the operator and the queue agent."""
        if isinstance(decision, ManualReview):
            to, attempt = "manual", decision.attempt
        else:
            to, attempt = f"{decision[0].unit} {decision[0].item_no}@{decision[0].dutylist_version}", decision[0].attempt
        routing[incident_id] = json.dumps({"to": to, "attempt": attempt}, ensure_ascii=False)

    def dispatched_since(review: ManualReview) -> bool:
        """Whether the incident went to a unit at the review's routing or a later one: a review that
        reaches the queue after an operator's dispatch (a refused ruling, then a good one) is stale."""
        route = json.loads(routing.get(review.incident_id) or "null")
        return route is not None and route["to"] != "manual" and route["attempt"] >= review.attempt

    async def send_dispatches(incident: Incident, decision: list[Dispatch]) -> None:
        for d in decision:
            await send(dispatches_topic, d.dispatch_id, d)
            task_event = TaskEvent(
                event_id=ids.task_event_id(d.dispatch_id, "dispatched"), task_id=d.dispatch_id,
                incident_id=incident.incident_id, unit=d.unit, kind="dispatched", at=d.dispatched_at,
                by="dispatcher", note=f"{d.item_no} {d.dutylist_version}", dispatch=d, incident=incident,
            )
            await send(task_events_topic, task_event.task_id, task_event)
            metrics.DISPATCHES.labels(d.unit, d.role).inc()

    @app.task
    async def follow_dutylists() -> None:
        """Every worker reads every published version, from the start of the topic, for ever."""
        try:
            await _follow_dutylists(servers, names.dutylists, books, dutylists_ready, dead_letter)
        except Exception as exc:  # without duty lists nothing can be routed: stop loudly
            log.exception("following %s failed", names.dutylists)
            await app.crash(exc)

    @app.agent(topic(*names.intakes.values()), name="normalize", concurrency=1)
    async def normalize(stream):
        async for event in stream.events():
            await dutylists_ready.wait()  # inside the loop: see the dispatch agent
            metrics.STAGE_IN.labels("normalize").inc()
            try:
                incident = to_incident(parse_intake(source_by_topic[event.message.topic], event.value),
                                       salt=salt, now=now(), locator=locator,
                                       dutylist_version=books.current.version)
            except IntakeError as exc:
                await dead_letter_event(event, "normalize", str(exc))
                continue
            except Exception as exc:  # a bug must not stop the stream: dead-letter it and go on
                log.exception("normalize failed")
                await dead_letter_event(event, "normalize", f"internal error: {exc!r}")
                continue
            await send(incidents_topic, incident.incident_id, incident)
            finished("normalize", event)

    def classify_batch(incidents: list[Incident]) -> list[tuple[DutyBook, Classification]]:
        """One model call per duty-list version present in the batch (batching is what makes it fast)."""
        books_used = [book_for(i) for i in incidents]
        results: dict[int, Classification] = {}
        for version in {b.version for b in books_used}:
            positions = [n for n, b in enumerate(books_used) if b.version == version]
            for n, result in zip(positions, classifier_for(books_used[positions[0]]).classify_many(
                    [incidents[n] for n in positions]), strict=True):
                results[n] = result
        return [(books_used[n], results[n]) for n in range(len(incidents))]

    @app.agent(incidents_topic, name="dispatch", concurrency=1)
    async def dispatch(stream):
        # take_events acks the batch when the body returns, even if it raised: every failure is
        # handled per event inside, as a dead letter.
        async for events in stream.take_events(settings.dispatch_batch_size, within=settings.dispatch_batch_seconds):
            # Wait for the duty lists here, never before the loop: Faust subscribes an agent's topic
            # only when it starts iterating, and a topic read by another agent meanwhile would be
            # acknowledged without this one (README: "One Faust agent per topic").
            await dutylists_ready.wait()
            parsed: list[tuple[EventT, Incident]] = []
            for event in events:
                metrics.STAGE_IN.labels("dispatch").inc()
                try:
                    parsed.append((event, Incident.model_validate_json(event.value)))
                except ValidationError as exc:
                    await dead_letter_event(event, "dispatch", describe_validation_error(exc))
            try:
                classified = await asyncio.to_thread(classify_batch, [incident for _, incident in parsed])
            except Exception:  # isolate the incident that breaks the batch: classify one by one
                log.exception("batch classification failed; classifying one by one")
                classified = [None] * len(parsed)
            for (event, incident), pair in zip(parsed, classified, strict=True):
                # Tables write their changelog to the partition of the current event, a context
                # variable that take_events leaves unset in this task. Set it to this incident's
                # event. Not via Stream._set_current_event: that also moves the stream's own
                # `current_event`, which take_events' buffer reads, and an event goes missing.
                _current_event.set(weakref.ref(event))
                try:
                    book, result = pair or classify_batch([incident])[0]
                    decision = route(incident, result, book, now=now(), threshold=settings.classify_threshold)
                    if incident.source == "whistle":
                        await emit(incident, decision)  # a whistle is its own case: no merging
                    else:
                        # To the caller stage first, keyed by reporter (by incident when anonymous):
                        # a repeat call may join an open case instead, even one routed otherwise.
                        routable = not isinstance(decision, ManualReview)
                        await send(classified_topic, incident.reporter_hash or incident.incident_id, ClassifiedIncident(
                            case_key=case_key(incident, decision[0].item_no) if routable else None,
                            incident=incident, confidence=result.confidence,
                            dispatches=decision if routable else [], review=None if routable else decision))
                        record_route(incident.incident_id, decision)
                except Exception as exc:  # the batch is acked anyway: keep the incident as a dead letter
                    log.exception("dispatch failed")
                    await dead_letter_event(event, "dispatch", f"internal error: {exc!r}")
                    continue
                finished("dispatch", event)

    default_merge_policy = MergePolicy(within_m=settings.merge_within_m, within_hours=settings.merge_within_hours)

    @app.agent(classified_topic, name="callers", concurrency=1)
    async def callers_agent(stream):
        """A reporter's reports meet here: one repeating an earlier report goes to that report's case,
        even when it was classified under another item or located in another street."""
        await each_event(stream, "callers", ClassifiedIncident, follow_caller)

    async def follow_caller(classified: ClassifiedIncident) -> None:
        incident = classified.incident
        if incident.reporter_hash:
            recent = [RecentReport.from_json(r) for r in json.loads(callers.get(incident.reporter_hash) or "[]")]
            policy_for = item_policies(book_for(incident).items_for(incident.street), default_merge_policy)
            verdict = follow_repeat_calls(recent, incident, classified.dispatches[0].item_no if classified.dispatches
                                          else None, classified.case_key, policy_for)
            callers[incident.reporter_hash] = json.dumps([r.to_json() for r in verdict.recent], ensure_ascii=False)
            classified = classified.model_copy(update={"case_key": verdict.case_key, "repeat_of": verdict.repeat_of})
        if classified.case_key is not None:
            await send(case_reports_topic, classified.case_key, classified)
        else:
            await send_manual(operator_review(classified))

    def operator_review(classified: ClassifiedIncident) -> ManualReview:
        """The report's review, naming the earlier report it repeats, so the operator sees one problem."""
        review = classified.review
        if classified.repeat_of:
            review = review.model_copy(update={
                "reason": f"{review.reason}; repeats incident {classified.repeat_of} (same caller, near-identical text)"})
        return review

    @app.agent(case_reports_topic, name="cases", concurrency=1)
    async def cases_agent(stream):
        """Reports of one problem become one case: the first is dispatched, the others merge into it."""
        await each_event(stream, "cases", ClassifiedIncident, decide_case)

    async def decide_case(classified: ClassifiedIncident) -> None:
        incident, decision = classified.incident, classified.dispatches
        state = json.loads(cases.get(classified.case_key) or '{"cases": [], "hotspots": {}}')
        # One case key is one item in one street, so that street's list sets the merge window.
        deduper = Deduper(item_policies(book_for(incident).items_for(incident.street),
                                        default_merge_policy)).restore(state["cases"])
        detector = HotspotDetector(settings.hotspot_threshold,
                                   dt.timedelta(hours=settings.hotspot_window_hours)).restore(state["hotspots"])
        redelivered = deduper.knows(incident.incident_id)
        # A report without dispatches is a repeat call bound for the operator: it may join a case, not open one.
        merge = deduper.offer(incident, decision[0].item_no if decision else "-", open_case=bool(decision))
        if merge is None and not decision:  # the case it repeated has closed meanwhile
            await send_manual(operator_review(classified))
            return
        if merge is None:
            await send_dispatches(incident, decision)
            opened = deduper.case(incident.incident_id)
            opened.task_id, opened.unit = decision[0].dispatch_id, decision[0].unit
        else:
            case = deduper.case(merge.case_id)
            merged = TaskEvent(event_id=ids.task_event_id(case.task_id, "merged", incident.incident_id),
                               task_id=case.task_id, incident_id=incident.incident_id, unit=case.unit, kind="merged",
                               at=incident.reported_at, by="cases", note=f"case {case.case_id}: {merge.rule}, report {merge.reports}")
            await send(task_events_topic, merged.task_id, merged)
            if not redelivered:
                metrics.MERGED.labels(merge.rule).inc()
        if not redelivered and (merge is None or merge.rule != "repeat call"):  # a caller repeating is one report
            hotspot = detector.offer(decision[0].item_no, incident.grid_code or incident.community, incident.reported_at)
            if hotspot:
                alert = Alert(alert_id=ids.stable_id(hotspot.alert_id), kind="hotspot", item_no=hotspot.item_no,
                              to_unit=decision[0].unit,
                              place=hotspot.place, reports=hotspot.reports, first_at=hotspot.first_at,
                              last_at=hotspot.last_at, raised_at=now())
                await send(alerts_topic, alert.alert_id, alert)
                metrics.ALERTS.labels("hotspot").inc()
        cases[classified.case_key] = json.dumps({"cases": deduper.state(), "hotspots": detector.state()},
                                                ensure_ascii=False)

    @app.agent(manual_topic, name="queue", concurrency=1)
    async def queue(stream):
        """Every review joins the operator queue here, whichever stage sent it (dispatcher, caller or
        case stage, the task stage after a return): this topic is keyed by incident id, like the
        operator's decisions, so the waiting entry is on the worker that gets the ruling."""
        async for event in stream.events():
            try:
                review = ManualReview.model_validate_json(event.value)
            except ValidationError:
                continue  # the sink dead-letters it
            if review.incident is not None and not dispatched_since(review):
                hold_for_operator(review)
                record_route(review.incident_id, review)

    @app.agent(topic(names.manual_decisions), name="operator", concurrency=1)
    async def operator(stream):
        await each_event(stream, "operator", OperatorDecision, decide_for_operator, refused=(NotWaiting,))

    async def decide_for_operator(ruling: OperatorDecision) -> None:
        await dutylists_ready.wait()  # inside the loop: see the dispatch agent
        entry = waiting.get(ruling.incident_id)
        if entry is None:
            raise NotWaiting(f"incident {ruling.incident_id} is not waiting for an operator (unknown, or already "
                             "dispatched)")
        waiting_entry = json.loads(entry)
        incident = Incident.model_validate(waiting_entry["incident"])
        await emit(incident, dispatch_item(incident, ruling.item_no, book_for(incident), now=now(),
                                           reason=f"operator {ruling.operator}: {ruling.note}".strip(": "),
                                           units=ruling.units, attempt=waiting_entry["review"]["attempt"]))

    def ready() -> bool:
        """Tables are complete only once recovery from their changelogs has finished."""
        return app.tables.recovery.completed.is_set() and not app.rebalancing and dutylists_ready.is_set()

    tasks, task_summaries = add_task_stage(app, settings, topic=topic, names=names, send=send, each_event=each_event,
                           book_for=book_for, units=bootstrap.units,
                           send_dispatches=send_dispatches, send_manual=send_manual, ready=ready)

    # Task events are stored as the task stage applied them (task-updates): the raw topic also
    # holds events the state machine refused, which go to the dead letters instead.
    models_by_topic: dict[str, type[BaseModel]] = {
        names.incidents: Incident, names.dispatches: Dispatch, names.task_updates: TaskUpdate,
        names.manual: ManualReview, names.dead_letters: DeadLetter, names.dutylists: DutyListVersion,
        names.manual_decisions: OperatorDecision, names.alerts: Alert, names.webhook_attempts: WebhookAttempt,
    }

    @app.task
    async def sink() -> None:
        """ClickHouse writer: its own consumer group, not a Faust agent. Faust acknowledges a message
        once every agent subscribed to its topic has; with the sink as a second agent on `incidents`,
        `manual` and `alerts`, the SIGKILL test saw one side miss messages right after a restart
        (dispatch in one run, the sink in another). Alone in its group, the sink commits exactly
        what it has stored."""
        try:
            await _run_sink(servers, f"{app.conf.id}-sink", models_by_topic, store, settings, dead_letter)
        except Exception as exc:  # without the sink nothing reaches ClickHouse: stop loudly
            log.exception("the ClickHouse sink failed")
            await app.crash(exc)

    @app.page("/stats/")
    async def stats_view(web, request):
        figures = await asyncio.to_thread(store.stats)
        figures["routing_table_size"] = len(routing)
        figures["waiting_for_operator"] = len(waiting)
        figures["dutylist_version"] = books.current.version
        figures["ready"] = ready()
        figures["now"] = now().isoformat()
        held = task_figures(task_summaries(), now())
        figures["tasks_by_status"] = held["by_status"]
        figures["tasks_overdue"] = sum(held["overdue"].values())
        return web.json(figures)

    @app.page("/tasks/")
    async def tasks_view(web, request):
        """Tasks held by this worker, as a department clerk lists them: ?unit=cgj&status=open|<status>."""
        unit, status = request.query.get("unit"), request.query.get("status")
        rows = []
        for stored in list(tasks.values()):
            task = TaskRecord.model_validate_json(stored).task
            if unit and task.unit != unit:
                continue
            if status and not (task.status == status or (status == "open" and task.status in OPEN)):
                continue
            rows.append(task.model_dump(mode="json", exclude={"applied"}))
        return web.json(sorted(rows, key=lambda t: (t["finish_by"] or "", t["task_id"])))

    @app.page("/sla/")
    async def sla_view(web, request):
        """The SLA board from ClickHouse: ?by=unit|item_no|top_class|street|district|grid_code|source."""
        by = request.query.get("by", "unit")
        try:
            board = await asyncio.to_thread(store.sla, by, now())
        except ValueError as exc:
            return web.json({"error": str(exc)}, status=400)
        return web.json(board)

    @app.page("/queue/")
    async def queue_view(web, request):
        """The operator queue on this worker: incident, where, why, candidate items."""
        rows = []
        for entry in list(waiting.values()):
            item = json.loads(entry)
            incident, review = item["incident"], item["review"]
            rows.append({"incident_id": incident["incident_id"], "source": incident["source"],
                         "title": incident["title"], "text": incident["text"][:200], "street": incident["street"],
                         "district": incident["district"], "reason": review["reason"],
                         "candidates": review["candidates"], "tanpai_refused": review["tanpai_refused"],
                         "queued_at": review["queued_at"]})
        return web.json(sorted(rows, key=lambda r: r["queued_at"]))

    @app.page("/metrics/")
    async def metrics_view(web, request):
        # Derived when scraped: a list published ahead of its date comes into force with no event.
        metrics.set_dutylist_version(books.current.version)
        held = task_figures(task_summaries(), now())
        metrics.TASKS.clear()
        for status, n in held["by_status"].items():
            metrics.TASKS.labels(status).set(n)
        metrics.TASKS_OVERDUE.clear()
        for (unit, limit), n in held["overdue"].items():
            metrics.TASKS_OVERDUE.labels(unit, limit).set(n)
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    return app


async def _follow_dutylists(servers: str, topic_name: str, books: DutyBooks, ready: asyncio.Event, dead_letter) -> None:
    tp = TopicPartition(topic_name, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        reported = await consumer.end_offsets([tp])
        # The embedded broker under-reports the end; read up to the true one before routing anything.
        end = (await asyncio.to_thread(true_end_offsets, servers, {tp: reported[tp]}))[tp]
        log.info("reading %d published duty-list record(s) from %s", end, topic_name)
        while True:
            if not ready.is_set() and await consumer.position(tp) >= end:
                log.info("duty list in force: %s (known: %s)", books.current.version, ", ".join(books.versions))
                ready.set()
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                for record in records:
                    await _apply_publication(record, books, dead_letter)
    finally:
        await consumer.stop()


async def _apply_publication(record, books: DutyBooks, dead_letter) -> None:
    try:
        publication = DutyListVersion.model_validate_json(record.value)
    except ValidationError as exc:
        reason = describe_validation_error(exc)
    else:
        problems = books.publish(publication.yaml)
        if not problems:
            log.info("duty list %s published %s is now in force", publication.version, publication.published_at)
            metrics.DUTYLIST_PUBLICATIONS.labels("applied").inc()
            return
        reason = f"duty list {publication.version} refused: " + "; ".join(p.describe() for p in problems[:10])
    metrics.DUTYLIST_PUBLICATIONS.labels("refused").inc()
    await dead_letter(record.topic, record.partition, record.offset, record.value, "dutylist", reason)


class NotWaiting(ValueError):
    """An operator ruled on an incident that is not in the queue."""


async def _run_sink(servers: str, group: str, models_by_topic: dict[str, type[BaseModel]], store: Store,
                    settings: Settings, dead_letter) -> None:
    """Read every output topic, insert each batch per table, then commit: rows are stored before
    offsets move, so a crash redelivers (and the store's idempotence absorbs it), never loses."""
    consumer = AIOKafkaConsumer(
        *models_by_topic, bootstrap_servers=servers, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=int(settings.session_timeout_seconds * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_seconds * 1000),
        max_poll_records=settings.sink_batch_size)
    await consumer.start()
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=int(settings.sink_flush_seconds * 1000),
                                             max_records=settings.sink_batch_size)
            batches: dict[type[BaseModel], list[BaseModel]] = defaultdict(list)
            for records in fetched.values():
                for record in records:
                    metrics.STAGE_IN.labels("sink").inc()
                    model = models_by_topic[record.topic]
                    try:
                        batches[model].append(model.model_validate_json(record.value))
                    except ValidationError as exc:
                        if model is DeadLetter:  # never loop a broken dead letter back onto its own topic
                            log.error("unreadable dead letter at %s@%d: %s", record.topic, record.offset,
                                      describe_validation_error(exc))
                        elif model not in (DutyListVersion, OperatorDecision):  # dead-lettered where read
                            await dead_letter(record.topic, record.partition, record.offset, record.value, "sink",
                                              describe_validation_error(exc))
            for model, rows in batches.items():
                await _insert_until_stored(store, rows)
                metrics.SINK_ROWS.labels(model.__name__).inc(len(rows))
            if fetched:
                await consumer.commit()
                now = time.time()
                for records in fetched.values():
                    metrics.STAGE_OUT.labels("sink").inc(len(records))
                    metrics.STAGE_LAST_PROCESSED.labels("sink").set(now)
                    for record in records:
                        metrics.STAGE_LATENCY.labels("sink").observe(max(0.0, now - record.timestamp / 1000))
    finally:
        await consumer.stop()


async def _insert_until_stored(store: Store, rows: list[BaseModel]) -> None:
    """Retry with capped backoff: while the store is down the stream waits (backpressure) and
    nothing is acknowledged, so nothing is lost. The dedup token makes the retries harmless."""
    delay = 0.5
    while True:
        try:
            await asyncio.to_thread(store.insert, rows)
            return
        except Exception as exc:
            metrics.SINK_RETRIES.inc()
            log.warning("ClickHouse insert of %d rows failed, retrying in %.1fs: %s", len(rows), delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)
