"""Following a compacted, one-partition topic from its start on every worker (no consumer group):
how each worker learns the duty lists and the text model in force."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from kafka import TopicPartition as KafkaTopicPartition

from agents.wiring import Wiring
from infra.kafka.broker import true_end_offsets
from infra.kafka.security import aiokafka_security

log = logging.getLogger(__name__)


async def follow_from_start(wiring: Wiring, topic_name: str, apply: Callable[[ConsumerRecord], Awaitable[None]],
                            caught_up: Callable[[], Awaitable[None]]) -> None:
    """`apply` every record from the first, for ever; `caught_up` once, when the records published before
    this worker started have all been applied (what it must know before it routes anything)."""
    servers = wiring.settings.kafka_bootstrap_servers
    tp = TopicPartition(topic_name, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, **aiokafka_security(wiring.settings),
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        reported = await consumer.end_offsets([tp])
        end = reported[tp]
        if wiring.settings.kafka_flavor == "tansu":
            # The embedded broker under-reports the end; read up to the true one before routing anything
            # (true_end_offsets reads with kafka-python, whose partitions are its own type).
            kafka_tp = KafkaTopicPartition(topic_name, 0)
            end = (await asyncio.to_thread(true_end_offsets, servers, {kafka_tp: end}))[kafka_tp]
        log.info("reading %d published record(s) from %s", end, topic_name)
        done = False
        while True:
            if not done and await consumer.position(tp) >= end:
                await caught_up()
                done = True
            for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                for record in records:
                    await apply(record)
    finally:
        await consumer.stop()
