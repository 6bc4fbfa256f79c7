"""The ClickHouse sink: every output topic into its table, stored before its offsets move.

    incidents, task-updates, manual, alerts, deadletters, dutylists,
    manual-decisions, webhook-attempts ──► sink (consumer group `<app>-sink`) ──► ClickHouse

It runs in `cityops api` (which owns the store on the embedded default), as its own consumer group:
Faust acknowledges a message once every agent subscribed to its topic has, so a sink inside the
worker beside another agent on the same topic saw one side miss messages after a restart. Alone in
its group, the sink commits exactly what it has stored. Batches are inserted off the event loop with
a dedup token; while ClickHouse is down the sink retries with backoff and reads nothing more
(backpressure), so nothing is lost and a retry never doubles a row.

A row the store refuses for what it holds (a data error, not an unreachable store) is found by
halving the batch, dead-lettered with its topic, offset and the column at fault, and the rest is
stored: one bad row must never stop every screen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from clickhouse_connect.driver.exceptions import DatabaseError, DataError
from pydantic import BaseModel, ValidationError

from infra import metrics
from infra.kafka.broker import FETCH_WAIT_MS
from infra.kafka.brokerwatch import BrokerWatch
from infra.kafka.security import aiokafka_security, kafka_python_security
from infra.settings import Settings
from infra.store import Store
from pipeline import ids
from schemas import (
    Alert,
    DeadLetter,
    DutyListVersion,
    Incident,
    ManualReview,
    OperatorDecision,
    TaskUpdate,
    WebhookAttempt,
    describe_validation_error,
)
from schemas.batches import placed_messages
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


def stored_models(names: TopicNames) -> dict[str, type[BaseModel]]:
    """topic → the message model stored from it. Task events are stored as the task stage applied them
    (task-updates, which also carry each dispatch): the raw topic also holds events the state machine
    refused, which go to the dead letters instead."""
    return {
        names.incidents: Incident, names.task_updates: TaskUpdate, names.manual: ManualReview,
        names.dead_letters: DeadLetter, names.dutylists: DutyListVersion, names.manual_decisions: OperatorDecision,
        names.alerts: Alert, names.webhook_attempts: WebhookAttempt,
    }


# Read by a worker stage, which dead-letters what it cannot parse: the sink only skips those.
DEAD_LETTERED_WHERE_READ = (DutyListVersion, OperatorDecision, ManualReview)


class Sink:
    def __init__(self, settings: Settings, store: Store, now: Callable[[], dt.datetime]):
        self.settings, self.store, self.now = settings, store, now
        self.names = TopicNames(settings.topic_prefix)
        self.group = f"{settings.topic_prefix}{settings.app_id}-sink"
        self.models = stored_models(self.names)
        self.running = False  # the consumer has started and is reading
        self.last_stored_at: float | None = None  # unix time of the last batch written
        self.caught_up_at = time.monotonic()  # when the sink last had all it read stored (behind_seconds)
        metrics.SINK_BEHIND.set_function(self.behind_seconds)
        self.watch = BrokerWatch(settings.kafka_bootstrap_servers, self.group, [], {t: "sink" for t in self.models},
                                 tansu=settings.kafka_flavor == "tansu", security=kafka_python_security(settings))

    async def watch_broker(self) -> None:
        """Check the broker every few seconds: /health and the metrics read `self.watch.state`."""
        while True:
            await asyncio.to_thread(self.watch.check)
            await asyncio.sleep(self.settings.broker_check_seconds)

    async def run(self) -> None:
        settings = self.settings
        consumer = AIOKafkaConsumer(
            *self.models, bootstrap_servers=settings.kafka_bootstrap_servers, **aiokafka_security(settings),
            group_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(settings.session_timeout_seconds * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval_seconds * 1000),
            max_poll_records=settings.sink_batch_size,
            # Tansu holds a multi-partition fetch for its whole max wait (infra/kafka/broker.py).
            fetch_max_wait_ms=FETCH_WAIT_MS if settings.kafka_flavor == "tansu" else 500)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, **aiokafka_security(settings),
                                    acks="all")
        await producer.start()
        await consumer.start()
        self.running = True
        watching = asyncio.create_task(self.watch_broker())
        try:
            while True:
                await self._one_batch(consumer, producer)
        finally:
            watching.cancel()
            self.running = False
            await consumer.stop()
            await producer.stop()

    async def _one_batch(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        began = time.monotonic()
        fetched = await self._fetch(consumer)
        batches: dict[type[BaseModel], list[tuple[Stored, BaseModel]]] = defaultdict(list)
        letters = []
        for records in fetched.values():
            for record in records:
                model = self.models[record.topic]
                try:
                    placed = placed_messages(record.value, record.headers)
                except ValueError as exc:  # a broken batch record (schemas/batches.py)
                    letters.append(self._dead_letter(Stored(record, None, record.value), str(exc)))
                    continue
                metrics.STAGE_IN.labels("sink").inc(len(placed))
                for index, value in placed:
                    stored = Stored(record, index, value)
                    try:
                        batches[model].append((stored, model.model_validate_json(value)))
                    except ValidationError as exc:
                        if model is DeadLetter:  # never loop a broken dead letter back onto its own topic
                            log.error("unreadable dead letter at %s@%d: %s", record.topic, record.offset,
                                      describe_validation_error(exc))
                        elif model not in DEAD_LETTERED_WHERE_READ:
                            letters.append(self._dead_letter(stored, describe_validation_error(exc)))
        if batches:
            refused = await store_until_done(self.store, list(batches.values()))
            letters += [self._dead_letter(stored, reason) for stored, reason in refused]
        for letter in letters:  # acknowledged by the broker before the offsets move
            await (await producer.send(self.names.dead_letters, key=letter.dead_letter_id.encode(),
                                       value=letter.model_dump_json().encode()))
        for model, rows in batches.items():
            metrics.SINK_ROWS.labels(model.__name__).inc(len(rows))
            metrics.STAGE_OUT.labels("sink").inc(len(rows))
        if not fetched:  # idle: the board's sealed rows catch up with changes to old days
            await asyncio.to_thread(self.store.seal_pending, now=True)
        else:
            await consumer.commit()
            now = time.time()
            self.last_stored_at = now
            for records in fetched.values():
                metrics.STAGE_LAST_PROCESSED.labels("sink").set(now)
                for record in records:
                    metrics.STAGE_LATENCY.labels("sink").observe(max(0.0, now - record.timestamp / 1000))
        self.caught_up_at = began

    def behind_seconds(self) -> float:
        """How long ago the sink last had everything it read stored: a second or two while it keeps up;
        growing while it retries a batch the store does not take (then nothing after it is stored)."""
        return time.monotonic() - self.caught_up_at

    def stalled(self) -> bool:
        return self.running and self.behind_seconds() > self.settings.sink_stall_seconds

    async def _fetch(self, consumer: AIOKafkaConsumer) -> dict:
        """Up to `sink_batch_size` records: after the first arrive, keep reading for `sink_linger_seconds`
        so each table gets one larger insert instead of many small ones (each insert has a fixed cost
        in ClickHouse: the profile of the api put 40% of it in inserts of a few rows)."""
        settings = self.settings
        fetched = await consumer.getmany(timeout_ms=int(settings.sink_flush_seconds * 1000),
                                         max_records=settings.sink_batch_size)
        count = sum(len(records) for records in fetched.values())
        deadline = time.monotonic() + settings.sink_linger_seconds
        while fetched and count < settings.sink_batch_size and (left := deadline - time.monotonic()) > 0:
            more = await consumer.getmany(timeout_ms=max(1, int(left * 1000)),
                                          max_records=settings.sink_batch_size - count)
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                count += len(records)
        return fetched

    def _dead_letter(self, stored: Stored, reason: str) -> DeadLetter:
        record = stored.record
        metrics.STAGE_FAILED.labels("sink").inc()
        metrics.DEAD_LETTERS.labels("sink").inc()
        log.warning("dead letter %s[%d]@%d%s stage=sink: %s", record.topic, record.partition, record.offset,
                    "" if stored.index is None else f"#{stored.index}", reason)
        return DeadLetter.of(stored.value, dead_letter_id=ids.dead_letter_id(record.topic, record.partition,
                                                                            record.offset, "sink", stored.index),
                             topic=record.topic, partition=record.partition, offset=record.offset,
                             batch_index=stored.index, stage="sink", reason=reason, failed_at=self.now())


@dataclass(frozen=True)
class Stored:
    """A message the sink read: its record, its place in a batch record (None: alone), its bytes."""

    record: ConsumerRecord
    index: int | None
    value: bytes | None


async def store_until_done(store: Store, batches: list[list[tuple[Stored, BaseModel]]],
                           ) -> list[tuple[Stored, str]]:
    """Store the batches, returning the records whose rows the store refused for their data, each with
    the reason. While the store is unreachable or refuses writes, retry with capped backoff: the stream
    waits (backpressure) and nothing is acknowledged, so nothing is lost. The dedup token makes the
    retries harmless."""
    delay = 0.5
    while True:
        try:
            return await asyncio.to_thread(store_or_isolate, store, batches)
        except Exception as exc:
            metrics.SINK_RETRIES.inc()
            log.warning("ClickHouse insert of %d rows failed, retrying in %.1fs: %s", sum(map(len, batches)), delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30)


def store_or_isolate(store: Store, batches: list[list[tuple[Stored, BaseModel]]],
                     ) -> list[tuple[Stored, str]]:
    """Insert every batch; when the store refuses one for its data, halve it until the refused rows
    stand alone and store the rest. Raises what is not a data error (the caller retries)."""
    try:
        store.insert(*([message for _, message in batch] for batch in batches))
        return []
    except Exception as exc:
        if not refused_for_its_data(exc):
            raise
    return [refusal for batch in batches for refusal in _isolate(store, batch)]


def _isolate(store: Store, rows: list[tuple[Stored, BaseModel]]) -> list[tuple[Stored, str]]:
    try:
        store.insert([message for _, message in rows])
        return []
    except Exception as exc:
        if not refused_for_its_data(exc):
            raise
        if len(rows) == 1:
            return [(rows[0][0], refusal_reason(exc))]
    half = len(rows) // 2
    return _isolate(store, rows[:half]) + _isolate(store, rows[half:])


# ClickHouse's error codes for a value its column cannot hold (the rest: the store is unwell, retry).
DATA_ERROR_CODES = {
    6,  # CANNOT_PARSE_TEXT
    27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38, 41,  # CANNOT_PARSE_DATE, CANNOT_PARSE_DATETIME
    53, 70,  # TYPE_MISMATCH, CANNOT_CONVERT_TYPE
    69,  # ARGUMENT_OUT_OF_BOUND
    72,  # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    469,  # VIOLATED_CONSTRAINT
}


def refused_for_its_data(exc: BaseException) -> bool:
    """A value the store's column cannot hold: the client could not serialise it (DataError), or the
    server refused it with a data error code. Such a row fails however often it is retried."""
    if isinstance(exc, DataError):
        return True
    code = re.search(r"\bCode: (\d+)", str(exc)) if isinstance(exc, DatabaseError) else None
    return code is not None and int(code.group(1)) in DATA_ERROR_CODES


def refusal_reason(exc: BaseException) -> str:
    """Which column and what kind of error, never the value: ClickHouse's messages may quote it."""
    text = str(exc)
    column = re.search(r"column `?([A-Za-z_][A-Za-z0-9_.]*)`?", text)
    kind = re.search(r"\(([A-Z][A-Z_]{3,})\)", text)
    return (f"the store refused the row: column {column.group(1) if column else '(not named)'} "
            f"({kind.group(1) if kind else type(exc).__name__}"
            f"{': value out of range' if 'out of range' in text else ''})")
