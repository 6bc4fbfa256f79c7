"""Reading a one-partition topic whole, from its start (the published duty lists and models)."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition

from infra.kafka.broker import true_end_offsets
from infra.kafka.security import kafka_python_security
from infra.settings import Settings


def read_all(settings: Settings, topic: str, *, timeout: float = 30.0) -> list[bytes]:
    """Every record's value on partition 0 of `topic`, in order, up to its end when asked."""
    servers, tp = settings.kafka_bootstrap_servers, TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=servers, **kafka_python_security(settings), enable_auto_commit=False,
                             group_id=None)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = true_end_offsets(servers, consumer.end_offsets([tp]))[tp]
        values, deadline = [], time.monotonic() + timeout
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: read {len(values)} of {end} records in {timeout:.0f} s")
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
        return values
    finally:
        consumer.close()
