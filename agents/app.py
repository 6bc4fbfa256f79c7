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
import logging
import time
from collections import defaultdict

import faust
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from agents.topics import TopicNames
from infra import metrics
from infra.settings import Settings
from infra.store import Store
from pipeline import ids
from pipeline.classify import KeywordClassifier
from pipeline.dutylists import DutyBook
from pipeline.locate import Locator
from pipeline.normalize import IntakeError, parse_intake, to_incident
from pipeline.route import route
from schemas import DeadLetter, Dispatch, Incident, ManualReview, TaskEvent, describe_validation_error

log = logging.getLogger(__name__)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def create_app(settings: Settings, store: Store, book: DutyBook) -> faust.App:
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

    def topic(*topic_names: str) -> faust.TopicT:
        return app.topic(*topic_names, key_serializer="raw", value_serializer="raw")

    incidents_topic = topic(names.incidents)
    dispatches_topic = topic(names.dispatches)
    task_events_topic = topic(names.task_events)
    manual_topic = topic(names.manual)
    dead_letters_topic = topic(names.dead_letters)
    source_by_topic = {t: source for source, t in names.intakes.items()}

    # incident id → where it went ("unit item@version" or "manual"). Setting a key is idempotent,
    # so a redelivered incident leaves the table as it was; this is what the restart test checks.
    routing = app.Table("routing", default=None, key_type=str, value_type=str, partitions=settings.topic_partitions)

    classifier = KeywordClassifier(book)
    locator = Locator(book.registry)
    salt = settings.pii_salt.get_secret_value()

    async def send(target: faust.TopicT, key: str, message: BaseModel) -> None:
        await target.send(key=key.encode(), value=message.model_dump_json().encode())

    async def dead_letter(event: EventT, stage: str, reason: str) -> None:
        msg = event.message
        letter = DeadLetter(
            dead_letter_id=ids.dead_letter_id(msg.topic, msg.partition, msg.offset, stage),
            topic=msg.topic, partition=msg.partition, offset=msg.offset, stage=stage, reason=reason,
            payload=(event.value or b"").decode("utf-8", errors="replace"), failed_at=_utcnow(),
        )
        await send(dead_letters_topic, letter.dead_letter_id, letter)
        metrics.STAGE_FAILED.labels(stage).inc()
        metrics.DEAD_LETTERS.labels(stage).inc()
        # The reason names fields, never values, so it is safe to log.
        log.warning("dead letter %s[%d]@%d stage=%s: %s", msg.topic, msg.partition, msg.offset, stage, reason)

    def finished(stage: str, event: EventT) -> None:
        now = time.time()
        metrics.STAGE_OUT.labels(stage).inc()
        metrics.STAGE_LAST_PROCESSED.labels(stage).set(now)
        metrics.STAGE_LATENCY.labels(stage).observe(max(0.0, now - event.message.timestamp))

    @app.agent(topic(*names.intakes.values()), name="normalize", concurrency=1)
    async def normalize(stream):
        async for event in stream.events():
            metrics.STAGE_IN.labels("normalize").inc()
            try:
                incident = to_incident(parse_intake(source_by_topic[event.message.topic], event.value),
                                       salt=salt, now=_utcnow(), locator=locator)
            except IntakeError as exc:
                await dead_letter(event, "normalize", str(exc))
                continue
            except Exception as exc:  # a bug must not stop the stream: dead-letter it and go on
                log.exception("normalize failed")
                await dead_letter(event, "normalize", f"internal error: {exc!r}")
                continue
            await send(incidents_topic, incident.incident_id, incident)
            finished("normalize", event)

    @app.agent(incidents_topic, name="dispatch", concurrency=1)
    async def dispatch(stream):
        async for event in stream.events():
            metrics.STAGE_IN.labels("dispatch").inc()
            try:
                incident = Incident.model_validate_json(event.value)
                now = _utcnow()
                decision = route(incident, classifier.classify(incident), book, now=now)
            except ValidationError as exc:
                await dead_letter(event, "dispatch", describe_validation_error(exc))
                continue
            except Exception as exc:
                log.exception("dispatch failed")
                await dead_letter(event, "dispatch", f"internal error: {exc!r}")
                continue
            if isinstance(decision, ManualReview):
                await send(manual_topic, incident.incident_id, decision)
                metrics.MANUAL_REVIEWS.labels(str(decision.tanpai_refused).lower()).inc()
                routing[incident.incident_id] = "manual"
            else:
                for d in decision:
                    await send(dispatches_topic, d.dispatch_id, d)
                    task_event = TaskEvent(
                        event_id=ids.task_event_id(d.dispatch_id, "dispatched"), task_id=d.dispatch_id,
                        incident_id=incident.incident_id, unit=d.unit, kind="dispatched", at=d.dispatched_at,
                        note=f"{d.item_no} {d.dutylist_version}",
                    )
                    await send(task_events_topic, task_event.task_id, task_event)
                    metrics.DISPATCHES.labels(d.unit, d.role).inc()
                primary = decision[0]
                routing[incident.incident_id] = f"{primary.unit} {primary.item_no}@{primary.dutylist_version}"
            finished("dispatch", event)

    models_by_topic: dict[str, type[BaseModel]] = {
        names.incidents: Incident, names.dispatches: Dispatch, names.task_events: TaskEvent,
        names.manual: ManualReview, names.dead_letters: DeadLetter,
    }

    @app.agent(topic(*models_by_topic), name="sink", concurrency=1)
    async def sink(stream):
        # take_events acks the batch when this body returns, so rows are stored before offsets move.
        async for events in stream.take_events(settings.sink_batch_size, within=settings.sink_flush_seconds):
            batches: dict[type[BaseModel], list[BaseModel]] = defaultdict(list)
            for event in events:
                metrics.STAGE_IN.labels("sink").inc()
                model = models_by_topic[event.message.topic]
                try:
                    batches[model].append(model.model_validate_json(event.value))
                except ValidationError as exc:
                    if model is DeadLetter:  # never loop a broken dead letter back onto its own topic
                        log.error("unreadable dead letter at %s@%d: %s", event.message.topic, event.message.offset,
                                  describe_validation_error(exc))
                    else:
                        await dead_letter(event, "sink", describe_validation_error(exc))
            for model, rows in batches.items():
                await _insert_until_stored(store, rows)
                metrics.SINK_ROWS.labels(model.__name__).inc(len(rows))
            for event in events:
                finished("sink", event)

    @app.page("/stats/")
    async def stats_view(web, request):
        figures = await asyncio.to_thread(store.stats)
        figures["routing_table_size"] = len(routing)
        # Tables are complete only once recovery from their changelogs has finished.
        figures["ready"] = app.tables.recovery.completed.is_set() and not app.rebalancing
        return web.json(figures)

    @app.page("/metrics/")
    async def metrics_view(web, request):
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    app.cityops_routing_table = routing  # for the worker's tests and future views
    return app


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
