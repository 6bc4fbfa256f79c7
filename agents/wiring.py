"""What every stage shares: its topics, buffered sends, dead letters, metrics and the batch loop.

Rules every stage keeps (docs/faust-on-tansu.md):
- concurrency=1 (faust-streaming #606 loses data above 1), one agent per topic;
- a handler never raises out of the loop: each failure becomes a DeadLetter and the stage goes on
  (`take_events` acknowledges a batch even when its body raised);
- at-least-once, never `exactly_once` (the embedded broker shows aborted records): every output
  has a deterministic id, so a redelivered input is absorbed downstream;
- sends are buffered (`send_soon`), not awaited one by one: Faust flushes its producer before it
  commits offsets (a flush that `agents.faust_patches` makes complete), so nothing acknowledged
  upstream is lost when a worker dies;
- but a table's changelog may reach the broker before a send the same event caused, and a
  redelivered event then finds its work done. So either the stage sends again what an event it has
  applied caused (tasks), or, for rare outputs, awaits the send before writing the table (an
  operator's ruling in agents/queue.py, a hotspot in agents/cases.py).
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import faust
from faust.streams import _current_event  # no public setter; see `Wiring.each_batch`
from faust.types import EventT, FutureMessage
from pydantic import BaseModel, ValidationError

from infra import metrics
from infra.settings import Settings
from pipeline import ids
from schemas import DeadLetter, Dispatch, Incident, ManualReview, TaskEvent, describe_validation_error
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

    def send(self, topic_name: str, key: str, message: BaseModel) -> FutureMessage:
        """Buffered: serialised once here, produced in the background, flushed before offsets commit.
        The returned future resolves when the broker has the message (awaited only where a table write
        must not reach the broker before it: see this module's rules)."""
        return self.topic(topic_name).send_soon(key=key.encode(), value=message.model_dump_json().encode())

    def send_manual(self, review: ManualReview) -> None:
        """To the operator queue (the queue stage holds it): keyed by incident, like the rulings."""
        self.send(self.names.manual, review.incident_id, review)
        metrics.MANUAL_REVIEWS.labels(str(review.tanpai_refused).lower()).inc()

    def open_tasks(self, incident: Incident, dispatches: list[Dispatch]) -> list[FutureMessage]:
        """Each dispatch opens a task: a `dispatched` event on `task-events` carrying the dispatch
        (the sink stores the dispatch from the task stage's update) and the report (for re-routing)."""
        sent = []
        for d in dispatches:
            sent.append(self.send(self.names.task_events, d.dispatch_id, TaskEvent(
                event_id=ids.task_event_id(d.dispatch_id, "dispatched"), task_id=d.dispatch_id,
                incident_id=incident.incident_id, unit=d.unit, kind="dispatched", at=d.dispatched_at,
                by="dispatcher", note=f"{d.item_no} {d.dutylist_version}", dispatch=d, incident=incident)))
            metrics.DISPATCHES.labels(d.unit, d.role).inc()
        return sent

    def dead_letter(self, topic_name: str, partition: int, offset: int, value: bytes | None, stage: str,
                    reason: str) -> None:
        letter = DeadLetter.of(value, dead_letter_id=ids.dead_letter_id(topic_name, partition, offset, stage),
                               topic=topic_name, partition=partition, offset=offset, stage=stage, reason=reason,
                               failed_at=self.now())
        self.send(self.names.dead_letters, letter.dead_letter_id, letter)
        metrics.STAGE_FAILED.labels(stage).inc()
        metrics.DEAD_LETTERS.labels(stage).inc()
        # The reason names fields, never values, so it is safe to log.
        log.warning("dead letter %s[%d]@%d stage=%s: %s", topic_name, partition, offset, stage, reason)

    def dead_letter_event(self, event: EventT, stage: str, reason: str) -> None:
        msg = event.message
        self.dead_letter(msg.topic, msg.partition, msg.offset, event.value, stage, reason)

    async def each_batch(self, stream, stage: str, model: type[BaseModel],
                         handle: Callable[[Any], Awaitable[None] | None], *,
                         refused: tuple[type[Exception], ...] = (), before: Callable[[], Awaitable[None]] | None = None,
                         forget: Callable[[str], object] | None = None, batch_size: int = 500,
                         within: float = 0.05) -> None:
        """The stage loop: a batch of events, each parsed with `model` and handled in order; what
        fails is dead-lettered with its reason — a validation error, a refusal the stage explains
        (`refused`), or a bug — and the stage goes on. `before` runs once per batch, inside the
        loop (an agent's topic is subscribed only once it iterates: docs/faust-on-tansu.md, "One Faust agent per topic").
        `forget(key)` takes the forget requests of the stage's retention (agents/retention.py)."""
        is_async = inspect.iscoroutinefunction(handle)
        async for events in stream.take_events(batch_size, within=within):
            if before is not None:
                await before()
            metrics.STAGE_IN.labels(stage).inc(len(events))
            handled = []
            for event in events:
                set_current_event(event)
                if forget is not None and (key := forget_request(event)) is not None:
                    forget(key)
                    continue
                try:
                    message = model.model_validate_json(event.value)
                except ValidationError as exc:
                    self.dead_letter_event(event, stage, describe_validation_error(exc))
                    continue
                try:
                    if is_async:
                        await handle(message)
                    else:
                        handle(message)
                except refused as exc:
                    self.dead_letter_event(event, stage, str(exc))
                    continue
                except Exception as exc:  # a bug must not stop the stream
                    log.exception("%s failed", stage)
                    self.dead_letter_event(event, stage, f"internal error: {exc!r}")
                    continue
                handled.append(event)
            finished(stage, handled)


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


def finished(stage: str, events: list[EventT]) -> None:
    """Metrics for the events a stage handled (the failed ones are counted as dead letters)."""
    if not events:
        return
    now = time.time()
    metrics.STAGE_OUT.labels(stage).inc(len(events))
    metrics.STAGE_LAST_PROCESSED.labels(stage).set(now)
    for event in events:
        metrics.STAGE_LATENCY.labels(stage).observe(max(0.0, now - event.message.timestamp))
