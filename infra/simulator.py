"""`cityops simulate departments`: play `pipeline.simulation` plans on the real topics.

Reads every task the task stage opened (the `dispatched` updates on `task-updates`, from the start,
so it picks up work dispatched before it started — and never acts on a task before it exists),
plans each task's life, and sends each step to `task-events` when its time
comes on the run's clock (scaled in a demo). Event ids are fixed per task and step: restarting
the simulator re-sends only what the task stage already ignores.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from agents.topics import TopicNames
from pipeline.clock import Clock
from pipeline.simulation import Behaviour, plan, to_event
from schemas import Dispatch, TaskUpdate

log = logging.getLogger(__name__)


def simulate_departments(servers: str, names: TopicNames, clock: Clock, reply_days: list[float], *,
                         seconds: float | None, seed: int = 11, behaviour: Behaviour = Behaviour(),
                         should_stop: Callable[[], bool] = lambda: False) -> Counter:
    """Run for `seconds` of real time (None: until `should_stop`); returns the events sent by kind."""
    rng = random.Random(seed)
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(names.task_updates, p)
                  for p in sorted(consumer.partitions_for_topic(names.task_updates) or [])]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    producer = KafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=20, retries=5)
    queue: list[tuple[float, int, Dispatch, int, object]] = []  # (real due time, tie, dispatch, step no, step)
    tie = itertools.count()
    planned: set[str] = set()
    sent: Counter = Counter()
    started = time.monotonic()
    try:
        while not should_stop() and (seconds is None or time.monotonic() - started < seconds):
            for records in consumer.poll(timeout_ms=100).values():
                for record in records:
                    update = TaskUpdate.model_validate_json(record.value)
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
