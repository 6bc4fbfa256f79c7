"""The sink alone: a fresh sink (its own consumer group) reads every message a pipeline run left on
the sink's topics into a fresh store, and says how long that took and what it cost in CPU. Run as
its own process (`python -m devtools.bench.sink`, environment as for `cityops api`) so its CPU is its
own and py-spy can sample it; prints its figures as one JSON line.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import resource
import sys
import time

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from infra.kafka.broker import true_end_offsets
from infra.settings import Settings
from infra.sink import Sink, stored_models
from infra.store import Store
from schemas.topics import TopicNames


def cpu_seconds() -> float:
    """This process's CPU so far, every thread's (chDB's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ends_of(servers: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=servers)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        return {tp: end for tp, end in true_end_offsets(servers, consumer.end_offsets(tps)).items() if end > 0}
    finally:
        consumer.close()


async def sink_until_caught_up(settings: Settings, store: Store, ends: dict[TopicPartition, int]) -> dict:
    sink = Sink(settings, store, lambda: dt.datetime.now(dt.timezone.utc))
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    wall, cpu = time.monotonic(), cpu_seconds()
    running = asyncio.create_task(sink.run())
    try:
        while True:
            await asyncio.sleep(0.2)
            if running.done():
                running.result()  # the sink stopped: its error
            committed = (await asyncio.to_thread(admin.list_group_offsets, sink.group)).get(sink.group, {})
            if all(tp in committed and committed[tp].offset >= end for tp, end in ends.items()):
                break
        return {"seconds": round(time.monotonic() - wall, 2), "cpu_seconds": round(cpu_seconds() - cpu, 2)}
    finally:
        running.cancel()
        admin.close()


def main() -> None:
    settings = Settings(app_id="sink-alone")
    names = TopicNames(settings.topic_prefix)
    ends = ends_of(settings.kafka_bootstrap_servers, list(stored_models(names)))
    with Store(settings.resolved_clickhouse_url()) as store:
        store.migrate()
        figures = asyncio.run(sink_until_caught_up(settings, store, ends))
        rows = {table: store.count(table) for table in ("incidents", "task_events", "tasks", "dispatches",
                                                         "manual_reviews", "alerts", "dead_letters")}
    records = sum(ends.values())
    stored = sum(rows.values())
    print(json.dumps(figures | {
        "records": records, "rows": rows, "rows_per_s": round(stored / figures["seconds"], 1),
        "cpu_ms_per_row": round(1000 * figures["cpu_seconds"] / stored, 3) if stored else None}))


if __name__ == "__main__":
    sys.exit(main())
