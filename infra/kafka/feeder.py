"""Putting intake events on the intake topics with kafka-python (what a hotline vendor would run)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kafka import KafkaProducer
from pydantic import BaseModel

from infra.kafka.security import kafka_python_security
from infra.settings import Settings
from pipeline.loadgen import IntakeEvent
from schemas.topics import TopicNames


def feed(bootstrap_servers: str, names: TopicNames, events: Iterable[IntakeEvent],
         on_sent: Callable[[int], None] = lambda n: None) -> int:
    """Send every event and wait for the broker's acknowledgement; returns how many were acked."""
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", linger_ms=20, retries=5)
    futures = []
    try:
        for event in events:
            futures.append(producer.send(names.intake(event.source), key=event.key.encode(), value=event.value))
            on_sent(1)
        producer.flush()
    finally:
        producer.close()
    # A send that failed raises here, so the caller never counts an event the broker did not take.
    return sum(1 for f in futures if f.get(timeout=30) is not None)


def publish(settings: Settings, topic: str, key: str, message: BaseModel) -> int:
    """Send one message and wait for the broker's acknowledgement; returns its offset."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, **kafka_python_security(settings),
                             acks="all", retries=5)
    try:
        future = producer.send(topic, key=key.encode(), value=message.model_dump_json().encode())
        return future.get(timeout=30).offset
    finally:
        producer.close()
