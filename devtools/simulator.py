"""`cityops simulate departments`: play `pipeline.simulation` plans on the real topics.

Reads every task the task stage opened (the `dispatched` updates on `task-updates`, from the start,
so it picks up work dispatched before it started — and never acts on a task before it exists),
plans each task's life, and sends each step to `task-events` when its time
comes on the run's clock (scaled in a demo). Event ids are fixed per task and step: restarting
the simulator re-sends only what the task stage already ignores.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from pipeline import ids
from pipeline.clock import Clock
from pipeline.simulation import Behaviour, plan, to_event
from schemas import Dispatch, ManualReview, OperatorDecision, TaskUpdate
from schemas.batches import messages_of
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


def simulate_departments(servers: str, names: TopicNames, clock: Clock, reply_days: list[float], *,
                         seconds: float | None, seed: int = 11, behaviour: Behaviour = Behaviour(),
                         should_stop: Callable[[], bool] = lambda: False) -> Counter:
    """Run for `seconds` of real time (None: until `should_stop`); returns the events sent by kind."""
    rng = random.Random(seed)
    consumer, producer = _reader_from_start(servers, names.task_updates), _producer(servers)
    queue: list[tuple[float, int, Dispatch, int, object]] = []  # (real due time, tie, dispatch, step no, step)
    tie = itertools.count()
    planned: set[str] = set()
    sent: Counter = Counter()
    started = time.monotonic()
    try:
        while not should_stop() and (seconds is None or time.monotonic() - started < seconds):
            for records in consumer.poll(timeout_ms=100).values():
                for value in (m for record in records for m in messages_of(record.value, record.headers)):
                    update = TaskUpdate.model_validate_json(value)
                    dispatch = update.event.dispatch
                    if dispatch is None or dispatch.dispatch_id in planned:
                        continue
                    planned.add(dispatch.dispatch_id)
                    # Plans start from the dispatch time on the run's clock: work read late is not made later.
                    base = time.monotonic() - clock.real_seconds(clock.now() - dispatch.dispatched_at)
                    for n, step in enumerate(plan(dispatch, rng, reply_days, behaviour), start=1):
                        heapq.heappush(queue, (base + clock.real_seconds(step.after), next(tie), dispatch, n, step))
            while queue and queue[0][0] <= time.monotonic():
                _, _, dispatch, n, step = heapq.heappop(queue)
                # Stamped when it happened in the plan: the pipeline's own delay is not the unit's.
                event = to_event(dispatch, n, step, min(dispatch.dispatched_at + step.after, clock.now()))
                producer.send(names.task_events, key=event.task_id.encode(), value=event.model_dump_json().encode())
                sent[event.kind] += 1
        producer.flush()
    finally:
        producer.close()
        consumer.close()
    log.info("simulated %d task events: %s", sum(sent.values()), dict(sent))
    return sent


def simulate_operators(servers: str, names: TopicNames, clock: Clock, *, seconds: float | None,
                       decide_within_hours: float = 4.0, seed: int = 13,
                       should_stop: Callable[[], bool] = lambda: False) -> Counter:
    """Operators work the queue: each review is decided within `decide_within_hours` of the city's
    time after it was queued — dispatched under its best candidate item, or, without one (or when
    that dispatch came back refused), closed as answered on the call (直接答复). Returns the rulings
    sent by action."""
    rng = random.Random(seed)
    consumer, producer = _reader_from_start(servers, names.manual), _producer(servers)
    queue: list[tuple[float, int, ManualReview]] = []
    tie = itertools.count()
    rulings: Counter = Counter()  # incident id → rulings sent, so a refused dispatch is closed next time
    sent: Counter = Counter()
    started = time.monotonic()
    try:
        while not should_stop() and (seconds is None or time.monotonic() - started < seconds):
            for records in consumer.poll(timeout_ms=100).values():
                for record in records:
                    if record.value is None:  # a forget request of the routing table's retention
                        continue
                    for value in messages_of(record.value, record.headers):
                        review = ManualReview.model_validate_json(value)
                        delay = dt.timedelta(hours=rng.uniform(0, decide_within_hours))
                        due = time.monotonic() + clock.real_seconds(review.queued_at + delay - clock.now())
                        heapq.heappush(queue, (due, next(tie), review))
            while queue and queue[0][0] <= time.monotonic():
                _, _, review = heapq.heappop(queue)
                n = rulings[review.incident_id]
                rulings[review.incident_id] += 1
                common = {"decision_id": ids.stable_id("simulated-operator", review.incident_id, n),
                          "incident_id": review.incident_id, "operator": "模拟值班员", "decided_at": clock.now()}
                if review.candidates and n == 0:
                    ruling = OperatorDecision(**common, action="dispatch", item_no=review.candidates[0])
                else:
                    ruling = OperatorDecision(**common, action="close", close_reason="answered",
                                              note="模拟：电话中直接答复")
                producer.send(names.manual_decisions, key=review.incident_id.encode(),
                              value=ruling.model_dump_json().encode())
                sent[ruling.action] += 1
        producer.flush()
    finally:
        producer.close()
        consumer.close()
    log.info("simulated %d operator rulings: %s", sum(sent.values()), dict(sent))
    return sent


def _reader_from_start(servers: str, topic: str) -> KafkaConsumer:
    """Every partition of `topic` from its start, outside any group (work done before we started counts)."""
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer


def _producer(servers: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=20, retries=5)
