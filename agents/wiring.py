"""What every stage shares: its topics, buffered sends, dead letters, metrics and the batch loop.

Rules every stage keeps (docs/faust-on-tansu.md):
- concurrency=1 (faust-streaming #606 loses data above 1), one agent per topic;
- a handler never raises out of the loop: each failure becomes a DeadLetter and the stage goes on
  (`take_events` acknowledges a batch even when its body raised);
- at-least-once, never `exactly_once` (the embedded broker shows aborted records): every output
  has a deterministic id, so a redelivered input is absorbed downstream;
- sends are buffered (`send_soon`), not awaited one by one: Faust flushes its producer before it
  commits offsets (a flush that `agents.faust_patches` makes complete), so nothing acknowledged
  upstream is lost when a worker dies; what goes to a topic only stages read waits in the outbox
  for the end of the batch and leaves as one batch record per partition (schemas/batches.py), so
  a stage flushes it (`Wiring.flush`) before its batch is acknowledged;
- but a table's changelog may reach the broker before a send the same event caused, and a
  redelivered event then finds its work done. So either the stage sends again what an event it has
  applied caused (tasks), or, for rare outputs, awaits the send before writing the table (an
  operator's ruling in agents/queue.py, a hotspot in agents/cases.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust
from aiokafka.partitioner import murmur2
from faust.streams import _current_event  # no public setter; see `Wiring.each_batch`
from faust.types import EventT
from pydantic import BaseModel, ValidationError

from infra import metrics
from infra.settings import Settings
from pipeline import ids
from pipeline.lifecycle import dispatched_event
from schemas import DeadLetter, Dispatch, Incident, ManualReview, describe_validation_error
from schemas.batches import pack, placed_messages
from schemas.topics import TopicNames

if TYPE_CHECKING:
    from agents.retention import Retention

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageState:
    """What a stage keeps, by name: its tables (counted on the worker's /health/) and the retentions
    that bound them (the worker's retention timer ticks each)."""

    tables: dict[str, faust.Table]
    retentions: tuple[Retention, ...] = ()


@dataclass
class Wiring:
    app: faust.App
    settings: Settings
    names: TopicNames
    now: Callable[[], dt.datetime]  # real time, or the scaled clock of a demo or simulation
    _topics: dict[str, faust.TopicT] = field(default_factory=dict)
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.settings.topic_partitions)

    def topic(self, *topic_names: str) -> faust.TopicT:
        """A topic of raw bytes (each stage parses with `schemas`), one object per name set."""
        key = ",".join(topic_names)
        if key not in self._topics:
            self._topics[key] = self.app.topic(*topic_names, key_serializer="raw", value_serializer="raw")
        return self._topics[key]

    def table(self, name: str) -> faust.Table:
        """A table keyed by str whose values are JSON as bytes, stored raw: serialised once by the stage
        (Faust's json codec would encode the JSON string again, escaping every Chinese character).
        Co-partitioned with the cityops topics."""
        table = self.app.Table(name, default=None, key_type=str, value_type=bytes,
                               partitions=self.settings.topic_partitions)
        # Faust derives the codec from the type ("json" for bytes) and takes no argument for it; the
        # store and the changelog topic read this attribute when they are first built, after this.
        table.value_serializer = "raw"
        return table

    def send(self, topic_name: str, key: str, message: BaseModel) -> asyncio.Future:
        """Buffered: serialised once here, produced in the background, flushed before offsets commit.
        A message for a batched topic (`TopicNames.batched`) waits in the outbox for the end of the
        stage's batch (`flush`). The returned future resolves when the broker has the message (awaited
        only where a table write must not reach the broker before it, through `sent`)."""
        value = message.model_dump_json().encode()
        if topic_name in self.names.batched:
            return self.outbox.add(topic_name, key.encode(), value)
        return self.topic(topic_name).send_soon(key=key.encode(), value=value)

    def flush(self) -> None:
        """The outbox to the producer, a batch record per partition: every stage calls it before its
        batch's events are acknowledged (the producer is flushed before offsets commit, the outbox is not)."""
        for topic_name, partition, key, value, headers, waiting in self.outbox.records():
            sent = self.topic(topic_name).send_soon(key=key, value=value, partition=partition, headers=headers)
            sent.add_done_callback(waiting.settle)

    async def sent(self, futures: list[asyncio.Future]) -> None:
        """Until the broker has these sends (the outbox flushed first, so they are on their way)."""
        self.flush()
        await asyncio.gather(*futures)

    def send_manual(self, review: ManualReview) -> None:
        """To the operator queue (the queue stage holds it): keyed by incident, like the rulings."""
        self.send(self.names.manual, review.incident_id, review)
        metrics.MANUAL_REVIEWS.labels(str(review.tanpai_refused).lower()).inc()

    def open_tasks(self, incident: Incident, dispatches: list[Dispatch]) -> list[asyncio.Future]:
        """Each dispatch opens a task: a `dispatched` event on `task-events` (pipeline.lifecycle)."""
        sent = []
        for d in dispatches:
            sent.append(self.send(self.names.task_events, d.dispatch_id, dispatched_event(incident, d)))
            metrics.DISPATCHES.labels(d.unit, d.role).inc()
        return sent

    def dead_letter(self, topic_name: str, partition: int, offset: int, value: bytes | None, stage: str,
                    reason: str, batch_index: int | None = None) -> None:
        letter = DeadLetter.of(value, dead_letter_id=ids.dead_letter_id(topic_name, partition, offset, stage, batch_index),
                               topic=topic_name, partition=partition, offset=offset, batch_index=batch_index,
                               stage=stage, reason=reason, failed_at=self.now())
        self.send(self.names.dead_letters, letter.dead_letter_id, letter)
        metrics.STAGE_FAILED.labels(stage).inc()
        metrics.DEAD_LETTERS.labels(stage).inc()
        # The reason names fields, never values, so it is safe to log.
        log.warning("dead letter %s[%d]@%d%s stage=%s: %s", topic_name, partition, offset,
                    "" if batch_index is None else f"#{batch_index}", stage, reason)

    def dead_letter_received(self, received: Received, stage: str, reason: str) -> None:
        msg = received.event.message
        self.dead_letter(msg.topic, msg.partition, msg.offset, received.value, stage, reason, received.index)

    def messages_in(self, event: EventT, stage: str) -> list[Received]:
        """The messages an event's record carries (schemas/batches.py); a batch record that does not
        hold what its header says is dead-lettered whole."""
        try:
            return [Received(event, index, value) for index, value in placed_messages(event.value, event.message.headers)]
        except ValueError as exc:  # BrokenBatch, or a header that is not a count
            self.dead_letter_received(Received.alone(event), stage, str(exc))
            return []

    async def each_batch(self, stream, stage: str, model: type[BaseModel],
                         handle: Callable[[Any], Awaitable[None] | None], *,
                         refused: tuple[type[Exception], ...] = (), before: Callable[[], Awaitable[None]] | None = None,
                         forget: Callable[[str], object] | None = None, batch_size: int = 500,
                         within: float = 0.05) -> None:
        """The stage loop: a batch of events, each message in them (a record may carry many:
        schemas/batches.py) parsed with `model` and handled in order; what fails is dead-lettered
        with its reason — a validation error, a refusal the stage explains (`refused`), or a bug — and
        the stage goes on. What the batch sent is flushed before its events are acknowledged.
        `before` runs once per batch, inside the loop (an agent's topic is subscribed only once it
        iterates: docs/faust-on-tansu.md, "One Faust agent per topic"). `forget(key)` takes the
        forget requests of the stage's retention (agents/retention.py)."""
        is_async = inspect.iscoroutinefunction(handle)
        async for events in stream.take_events(batch_size, within=within):
            if before is not None:
                await before()
            handled = 0
            for event in events:
                set_current_event(event)
                if forget is not None and (key := forget_request(event)) is not None:
                    forget(key)
                    continue
                messages = self.messages_in(event, stage)
                metrics.STAGE_IN.labels(stage).inc(len(messages))
                for received in messages:
                    _current_message.set(received)
                    try:
                        message = model.model_validate_json(received.value)
                    except ValidationError as exc:
                        self.dead_letter_received(received, stage, describe_validation_error(exc))
                        continue
                    try:
                        if is_async:
                            await handle(message)
                        else:
                            handle(message)
                    except refused as exc:
                        self.dead_letter_received(received, stage, str(exc))
                        continue
                    except Exception as exc:  # a bug must not stop the stream
                        log.exception("%s failed", stage)
                        self.dead_letter_received(received, stage, f"internal error: {exc!r}")
                        continue
                    handled += 1
            self.flush()
            finished(stage, events, handled)


@dataclass(frozen=True)
class Received:
    """A message as a stage reads it: the event of the record it came in, its place in a batch record
    (None: the record held it alone) and its bytes."""

    event: EventT
    index: int | None
    value: bytes | None

    @classmethod
    def alone(cls, event: EventT) -> Received:
        """The message of a record that holds one (the intake topics)."""
        return cls(event, None, event.value)


_current_message: ContextVar[Received] = ContextVar("cityops_current_message")


def current_message() -> Received:
    """The message the stage loop is handling (`Wiring.each_batch`)."""
    return _current_message.get()


class Outbox:
    """What a stage sends to the batched topics during a batch, by partition, in the order sent: each
    partition's messages leave as batch records (schemas/batches.py) of at most `MAX_RECORD_BYTES`.
    The partition is the one Kafka's default partitioner gives the message's key, so a key's messages
    meet the same partition (and its table entry) whether they come batched, alone from the api, or
    as a forget request."""

    MAX_RECORD_BYTES = 256 * 1024  # well under the broker's and producer's 1 MB limits

    def __init__(self, partitions: int):
        self.partitions = partitions
        self._pending: dict[tuple[str, int], list[tuple[bytes, bytes, Waiting]]] = {}

    def add(self, topic_name: str, key: bytes, value: bytes) -> asyncio.Future:
        partition = (murmur2(key) & 0x7FFFFFFF) % self.partitions
        waiting = Waiting(asyncio.get_running_loop().create_future())
        self._pending.setdefault((topic_name, partition), []).append((key, value, waiting))
        return waiting.future

    def records(self) -> Iterator[tuple[str, int, bytes, bytes, list[tuple[str, bytes]], Waiting]]:
        """(topic, partition, key, value, headers, waiting) of each batch record, emptying the outbox."""
        pending, self._pending = self._pending, {}
        for (topic_name, partition), messages in pending.items():
            start = 0
            while start < len(messages):
                end, size = start + 1, len(messages[start][1])
                while end < len(messages) and size + len(messages[end][1]) + 1 <= self.MAX_RECORD_BYTES:
                    size += len(messages[end][1]) + 1
                    end += 1
                chunk = messages[start:end]
                value, headers = pack([v for _, v, _ in chunk])
                yield topic_name, partition, chunk[0][0], value, headers, Waiting.all([w for _, _, w in chunk])
                start = end


@dataclass(frozen=True)
class Waiting:
    """The futures of the messages one batch record carries: settled when the broker has the record."""

    future: asyncio.Future
    others: tuple[asyncio.Future, ...] = ()

    @classmethod
    def all(cls, waitings: list[Waiting]) -> Waiting:
        return cls(waitings[0].future, tuple(w.future for w in waitings[1:]))

    def settle(self, sent: asyncio.Future) -> None:
        for future in (self.future, *self.others):
            if future.done():
                continue
            if sent.cancelled():
                future.cancel()
            elif (exc := sent.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(sent.result())


# A message with no value and this header asks the stage to forget the table entry it names
# (agents/retention.py); keyed as the entry's messages, so it reaches the entry's partition.
FORGET_HEADER = "cityops-forget"


def forget_request(event: EventT) -> str | None:
    """The key of the entry a forget request names, or None for any other message."""
    if event.value is not None:
        return None
    headers = event.message.headers or ()
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        if name == FORGET_HEADER and value:
            return value.decode(errors="replace")
    return None


def set_current_event(event: EventT) -> None:
    """Before a table write: tables write their changelog to the partition of the current event, a
    context variable that take_events leaves unset. Not via Stream._set_current_event: that also
    moves the stream's own `current_event`, which take_events' buffer reads."""
    _current_event.set(weakref.ref(event))


def finished(stage: str, events: list[EventT], handled: int) -> None:
    """Metrics for a batch: `handled` messages out of its `events` (the failed ones are counted as dead letters)."""
    if not events:
        return
    now = time.time()
    metrics.STAGE_OUT.labels(stage).inc(handled)
    metrics.STAGE_LAST_PROCESSED.labels(stage).set(now)
    for event in events:
        metrics.STAGE_LATENCY.labels(stage).observe(max(0.0, now - event.message.timestamp))
