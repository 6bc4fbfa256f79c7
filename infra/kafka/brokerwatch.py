"""What the broker holds for a consumer group, checked from outside the stream: reachable or not,
lag per topic, and whether its log was lost.

Every process that reads topics (each worker, the api's sink) runs a `BrokerWatch` every few
seconds, off the event loop. It feeds:
- `cityops_consumer_lag{stage,topic}`: records in the topic its group has not committed yet (a
  slow stage shows here first; the group's figure, so every worker of a group reports the same);
- `cityops_broker_up`, and `/health`'s readiness: a worker whose broker does not answer is not ready;
- `cityops_broker_log_lost_total` and an ERROR line when the log is known lost: a topic seen before
  is gone, or a partition's end moved back (below what it was, or below the group's commit). The
  embedded broker keeps everything in memory and loses it all when it restarts; a real Kafka
  cluster loses a log only when a topic is deleted, or by unclean leader election.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from infra import metrics
from infra.kafka.broker import accepts_tcp, true_end_offsets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerState:
    """One check's answer."""

    reachable: bool
    lag: dict[str, int] = field(default_factory=dict)  # topic → records not committed by the group
    lost: tuple[str, ...] = ()  # why the log is known lost (names topics and partitions, nothing else)
    checked_at: float = 0.0  # unix time
    error: str | None = None  # why the broker could not be read

    def as_json(self, stage_of: Mapping[str, str]) -> dict:
        by_stage: dict[str, int] = {}
        for topic, n in self.lag.items():
            if topic in stage_of:
                by_stage[stage_of[topic]] = by_stage.get(stage_of[topic], 0) + n
        return {"reachable": self.reachable, "lag": by_stage, "lag_by_topic": {t: n for t, n in self.lag.items() if n},
                "lost": list(self.lost), "checked_at": self.checked_at, "error": self.error}


def log_losses(seen_ends: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int],
               committed: Mapping[TopicPartition, int], seen_topics: Iterable[str], topics: Iterable[str]) -> list[str]:
    """Why the broker's log is known lost, comparing this check with what earlier ones saw. A log only
    grows, so an end below an earlier end or below the group's commit means it was lost and begun again."""
    present = set(topics)
    reasons = [f"topic {t} is gone" for t in sorted(set(seen_topics) - present)]
    for tp, end in sorted(ends.items()):
        if end < seen_ends.get(tp, 0):
            reasons.append(f"{tp.topic}[{tp.partition}] ends at {end}, earlier at {seen_ends[tp]}")
        elif end < committed.get(tp, 0):
            reasons.append(f"{tp.topic}[{tp.partition}] ends at {end}, below the group's commit {committed[tp]}")
    return reasons


class BrokerWatch:
    """Checks one consumer group's topics; `check()` blocks (kafka-python): call it in a thread."""

    def __init__(self, bootstrap_servers: str, group: str, topics: Iterable[str], stage_of: Mapping[str, str], *,
                 tansu: bool, security: Mapping | None = None):
        self.bootstrap_servers, self.group, self.tansu = bootstrap_servers, group, tansu
        self.stage_of = dict(stage_of)  # topic → the stage reading it with the group: its lag is measured
        self.topics = sorted(set(topics) | set(stage_of))  # watched for loss
        self.security = dict(security or {})
        self.state = BrokerState(reachable=True)  # optimistic until the first check
        self.lost: tuple[str, ...] = ()  # what the last check that found a loss said (kept: it happened)
        self._seen_ends: dict[TopicPartition, int] = {}
        self._failed_checks = 0
        # partition → (its commit, since when that commit has not moved while records wait)
        self._waiting: dict[TopicPartition, tuple[int, float]] = {}
        self._seen_topics: set[str] = set()

    def check(self) -> BrokerState:
        now = time.time()
        if not accepts_tcp(self.bootstrap_servers):  # before kafka-python, which logs every retry
            return self._record(BrokerState(reachable=False, checked_at=now, error="no connection"))
        try:
            reported, committed, present = self._read()
        except Exception as exc:  # noqa: BLE001 - any failure means the broker cannot be read now
            return self._record(BrokerState(reachable=False, checked_at=now, error=f"{type(exc).__name__}: {exc}"))
        # Tansu's reported end (its last batch's base + 1) is wrong but only ever grows, so a loss is
        # judged on it; the correction can fail under load and would then look like a loss. Its group
        # offsets live and die with its log, so they are never ahead of a new one.
        reasons = log_losses(self._seen_ends, reported, {} if self.tansu else committed, self._seen_topics, present)
        self._seen_ends = {tp: max(end, self._seen_ends.get(tp, 0)) if not reasons else end
                           for tp, end in reported.items()}
        try:  # lag needs the true end (infra/kafka/broker.py)
            ends = true_end_offsets(self.bootstrap_servers, reported) if self.tansu else reported
        except Exception:  # noqa: BLE001 - gone meanwhile: the lag waits for the next check
            ends = reported
        self._seen_topics = set(present)
        lag: dict[str, int] = {}
        waiting: dict[TopicPartition, tuple[int, float]] = {}
        for tp, end in ends.items():
            if tp.topic in self.stage_of:  # not the changelogs: watched for loss, read without the group
                behind = max(0, end - committed.get(tp, 0))
                lag[tp.topic] = lag.get(tp.topic, 0) + behind
                if behind:
                    commit, since = self._waiting.get(tp, (None, now))
                    waiting[tp] = (committed.get(tp, 0), since if commit == committed.get(tp, 0) else now)
        self._waiting = waiting
        if reasons:  # this check found it; the next compares with what this one saw
            self.lost = tuple(reasons)
            metrics.BROKER_LOG_LOST.inc()
            log.error("the broker lost its log (%s): messages it held and not yet processed are gone, and what "
                      "this process holds no longer matches its topics", "; ".join(reasons))
        return self._record(BrokerState(reachable=True, lag=lag, lost=self.lost, checked_at=now))

    def stalled(self, seconds: float) -> list[tuple[TopicPartition, int]]:
        """Partitions whose commit has not moved for `seconds` while records wait: (partition, commit)."""
        now = time.time()
        return [(tp, commit) for tp, (commit, since) in self._waiting.items() if now - since >= seconds]

    def _record(self, state: BrokerState) -> BrokerState:
        # One slow or failed check on a loaded machine is not an outage: unreachable after two in a row.
        self._failed_checks = 0 if state.reachable else self._failed_checks + 1
        if not state.reachable and self._failed_checks < 2:
            state = replace(self.state, checked_at=state.checked_at, error=state.error)
        if state.reachable != self.state.reachable:
            if state.reachable:
                log.info("the broker at %s answers again", self.bootstrap_servers)
            else:
                log.warning("the broker at %s does not answer (%s): not ready until it does", self.bootstrap_servers,
                            state.error)
        self.state = state
        metrics.BROKER_UP.set(1 if state.reachable else 0)
        for topic, n in state.lag.items():
            metrics.CONSUMER_LAG.labels(self.stage_of.get(topic, "-"), topic).set(n)
        return state

    def _read(self) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int], list[str]]:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers, request_timeout_ms=3000, **self.security)
        try:
            present = [t for t in admin.list_topics() if t in self.topics]
            committed = {tp: meta.offset for tp, meta in admin.list_group_offsets({self.group: None}).get(self.group, {}).items()
                         if tp.topic in self.topics and meta.offset >= 0}
        finally:
            admin.close()
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers, group_id=None, enable_auto_commit=False,
                                 request_timeout_ms=3000, **self.security)
        try:
            partitions = [TopicPartition(t, p) for t in present for p in sorted(consumer.partitions_for_topic(t) or ())]
            ends = consumer.end_offsets(partitions) if partitions else {}
        finally:
            consumer.close()
        return ends, committed, present
