"""Putting what the api accepts on the topics the workers read, and answering only once the broker
has acknowledged it: kafka-python, `acks=all`, idempotent (a retried send is never written twice).

The producer is made on the first publish, not at start: the api serves figures while Kafka is down,
and an intake request then gets a 503 with Retry-After rather than a process that will not start.
A publish that times out may still be delivered later by the producer's own retries; that is
harmless, because every message has a deterministic id and a retry by the client lands on the same
incident or task event.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from kafka import KafkaProducer
from kafka.producer.future import RecordMetadata

from infra.api.problems import Problem
from infra.kafka.security import kafka_python_security
from infra.settings import Settings

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5


class Publisher:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.timeout = settings.api_publish_timeout_seconds
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._known_topics: set[str] = set()  # metadata fetched: send() no longer blocks on them

    def _open(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                if not self.settings.kafka_bootstrap_servers:
                    raise OSError("KAFKA_BOOTSTRAP_SERVERS is not set")
                wait_ms = int(self.timeout * 1000)
                self._producer = KafkaProducer(
                    bootstrap_servers=self.settings.kafka_bootstrap_servers, **kafka_python_security(self.settings),
                    acks="all", enable_idempotence=True, linger_ms=2,
                    # send() blocks at most this long for metadata; a delivery gives up after it.
                    max_block_ms=wait_ms, request_timeout_ms=wait_ms, delivery_timeout_ms=wait_ms + 100,
                    bootstrap_timeout_ms=wait_ms)
            return self._producer

    async def publish(self, topic: str, key: str, value: bytes) -> RecordMetadata:
        """The record's metadata once the broker holds it; else a 503 problem (nothing was confirmed)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(method, arg) -> None:
            loop.call_soon_threadsafe(lambda: done.done() or getattr(done, method)(arg))

        def send() -> None:
            future = self._open().send(topic, key=key.encode(), value=value)
            future.add_callback(lambda md: settle("set_result", md))
            future.add_errback(lambda exc: settle("set_exception", exc))

        try:
            if topic in self._known_topics:
                send()  # only appends to the producer's buffer: no thread hop per request
            else:  # the first send to a topic fetches its metadata, which may block while the broker is away
                await asyncio.wait_for(asyncio.to_thread(send), self.timeout)
            metadata = await asyncio.wait_for(done, self.timeout)
            self._known_topics.add(topic)
            return metadata
        except Exception as exc:
            log.warning("publishing to %s failed: %s", topic, type(exc).__name__)
            raise Problem(503, "Service Unavailable", "the message broker did not acknowledge the message; nothing "
                          "was accepted. Retry later with the same request (it is idempotent).",
                          headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=self.timeout)
                self._producer = None
