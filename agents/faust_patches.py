"""Corrections to faust-streaming 0.15.3 that at-least-once depends on, applied once per process
(`apply_faust_patches`): a flush before a commit that waits for every buffered message, a
consumer that reads skipped offsets again instead of committing them (`reread_skipped_offsets`),
and a commit that never passes over a record no stage acknowledged (`commit_no_hole_at_the_head`).

Faust commits a partition's offsets only after `Producer.flush()`, so that everything the acked
events sent (stage outputs and table changelog records, all buffered by `send_soon`) is on the
broker first. Its `ProducerBuffer.flush` does not keep that promise: it gives up as soon as no
message leaves the buffer for 0.1 s and returns with messages still queued. On a loaded event loop
(a batch being classified) or behind a full produce accumulator that happens, the offsets are
committed anyway, and a worker killed then loses those events for good (tests/integration/
test_faults.py kills workers mid-stream and counts what is lost).

Two more make Faust work on the embedded broker (Tansu), applied only there
(`apply_tansu_patches`): table recovery reads each changelog to its true end, where Tansu's
ListOffsets(latest) answers short (`patch_faust_highwaters`), and the worker's fetches ask for a
short max wait, where Tansu holds a multi-partition fetch for the whole wait even as records
arrive (`patch_faust_fetch_wait`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from faust.exceptions import ProducerSendError
from faust.transport.consumer import Consumer, ensure_TP
from faust.transport.producer import ProducerBuffer
from faust.types import FutureMessage
from kafka import TopicPartition

from infra.kafka.broker import FETCH_WAIT_MS, true_end_offsets

log = logging.getLogger(__name__)


def apply_faust_patches() -> None:
    make_producer_flush_complete()
    reread_skipped_offsets()
    commit_no_hole_at_the_head()


def apply_tansu_patches(bootstrap_servers: str) -> None:
    patch_faust_highwaters(bootstrap_servers)
    patch_faust_fetch_wait()


def patch_faust_highwaters(bootstrap_servers: str) -> None:
    """Make Faust's table recovery read to the true end of each changelog partition on Tansu."""
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




# A jump that persists after this many re-reads is taken for a real gap (Faust's behaviour).
REREADS_BEFORE_GIVING_UP = 3


class ReadOffsets(defaultdict):
    """Faust's last-delivered offset per partition, which ignores what stale records would set
    while a partition is re-read from the start of a jump (`rereading`: tp → offset expected next)."""

    def __init__(self):
        super().__init__(lambda: None)
        self.rereading: dict = {}  # tp → the offset a re-read waits for
        self.rereads: dict = {}  # tp → (first skipped offset, re-reads of that jump): one entry per partition
        self.dropped: dict = {}  # tp → records fetched out of turn during its re-read

    def __setitem__(self, tp, offset) -> None:
        expected = self.rereading.get(tp)
        if expected is not None and offset is not None:
            if offset != expected:
                return  # a record fetched before the re-read: it comes again, in order
            del self.rereading[tp]
        super().__setitem__(tp, offset)


def reread_skipped_offsets() -> None:
    """Faust's consumer, handed a record whose offset jumps past the last one it delivered, counts
    the offsets between as processed (a "gap": for compaction and transaction markers) and commits
    them. After a worker restart on the embedded broker it was handed such jumps, e.g. offsets
    115..240 of a partition never delivered and then committed: a contiguous run of events lost (up
    to 598 of 2,400 across a SIGKILL). cityops' stage topics are never compacted and carry no
    transactions, so a jump is a skip: the partition is read again from the first skipped offset,
    and records delivered out of turn meanwhile are dropped (they come again, in order). A jump that
    persists after REREADS_BEFORE_GIVING_UP re-reads is logged as an error and left to Faust."""
    if getattr(Consumer, "_cityops_rereads", False):
        return
    init, add_gap, seek, perform_seek = Consumer.__init__, Consumer._add_gap, Consumer.seek, Consumer.perform_seek

    def __init__(self: Consumer, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        self._read_offset = offsets = ReadOffsets()
        deliver = self.callback

        async def callback(message):
            expected = offsets.rereading.get(message.tp)
            if expected is not None and message.offset != expected:
                offsets.dropped[message.tp] = offsets.dropped.get(message.tp, 0) + 1
                return None  # out of turn: it comes again once the re-read reaches it
            if expected is not None:
                log.info("re-reading %s[%d] from %d: %d records fetched out of turn meanwhile", message.tp.topic,
                         message.tp.partition, expected, offsets.dropped.pop(message.tp, 0))
            return await deliver(message)

        self.callback = callback

    async def _add_gap(self: Consumer, tp, offset_from: int, offset_to: int) -> None:
        offsets: ReadOffsets = self._read_offset
        if tp in offsets.rereading:
            return  # already re-reading: this record was fetched before the seek
        previous, tries = offsets.rereads.get(tp, (None, 0))
        tries = tries + 1 if previous == offset_from else 1
        offsets.rereads[tp] = (offset_from, tries)
        if tries > REREADS_BEFORE_GIVING_UP:
            log.error("offsets %d..%d of %s[%d] are still skipped after %d re-reads: counted as processed",
                      offset_from, offset_to - 1, tp.topic, tp.partition, tries - 1)
            return await add_gap(self, tp, offset_from, offset_to)
        log.warning("offsets %d..%d of %s[%d] were skipped by the fetch: reading them again",
                    offset_from, offset_to - 1, tp.topic, tp.partition)
        await _read_again_from(self, tp, offset_from)

    # Faust's seeks set the read offset to the offset read *next*, where everywhere else it is the
    # offset delivered *last*: so a first record one past the seek went unnoticed (that record never
    # read, its successors committed over it), and a larger jump was read again from one past the
    # seek (the record at the seek itself never read). Both seeks below set "delivered last" (the
    # offset before), so any first record past the seek is a jump and is read again from the seek.
    async def seek_ending_reread(self: Consumer, partition, offset: int) -> None:  # Faust's own seeks end a re-read
        self._read_offset.rereading.pop(partition, None)
        await seek(self, partition, offset)
        if offset is not None and offset > 0:
            self._read_offset[ensure_TP(partition)] = offset - 1

    async def perform_seek_ending_rereads(self: Consumer) -> None:  # to the committed offsets, after a rebalance
        offsets: ReadOffsets = self._read_offset
        offsets.rereading.clear()
        await perform_seek(self)
        for tp, offset in list(offsets.items()):
            if offset is not None and offset > 0:
                offsets[tp] = offset - 1

    Consumer.__init__, Consumer._add_gap = __init__, _add_gap
    Consumer.seek, Consumer.perform_seek = seek_ending_reread, perform_seek_ending_rereads
    Consumer._cityops_rereads = True


def commit_no_hole_at_the_head() -> None:
    """Faust's `_new_offset` takes the committed offset for the last one processed, where it is the
    next one to read: an unacknowledged record right at the commit, with its successors acked, was
    committed over (`min(acked) - committed > 1` lets a hole of one pass): a record Faust fetched
    and never handed to a stage (docs/faust-on-tansu.md, "A partition that stops being read") could be lost that
    way. Now any hole at the head holds the commit back, as a larger one always did, and says so
    once in the log."""
    if getattr(Consumer, "_cityops_no_hole", False):
        return
    new_offset = Consumer._new_offset
    Consumer._cityops_holes = {}  # tp → the commit a hole was last reported at (one line per hole)

    def _new_offset(self: Consumer, tp):
        acked, committed = self._acked[tp], self._committed_offset[tp]
        if acked and committed is not None and min(acked) > committed and not self._gap[tp].overlaps(committed):
            held = self._cityops_holes.get(tp)
            if held != committed:
                self._cityops_holes[tp] = committed
                log.warning("%s[%d]: offset %d is not acknowledged while %d are after it: the commit waits for it",
                            tp.topic, tp.partition, committed, len(acked))
            return None
        return new_offset(self, tp)

    Consumer._new_offset = _new_offset
    Consumer._cityops_no_hole = True


# How long a flush waits for the broker's acknowledgements (a busy broker took 10 s once). A message
# still unacknowledged then fails the flush: the commit fails, its records are read again, not lost.
# Without a bound, a producer stopped under a pending message (the worker restarting itself after a
# stall) left the commit waiting for good, and the worker never stopped (a clean-clone run, 2026-12-07).
FLUSH_ACK_SECONDS = 60.0


def make_producer_flush_complete(ack_seconds: float = FLUSH_ACK_SECONDS) -> None:
    """`ProducerBuffer.flush` returns once every message put before the call is acknowledged by the
    broker, and raises ProducerSendError if one failed or none came within `ack_seconds` (the commit
    then fails: replayed, not lost)."""
    ProducerBuffer._cityops_ack_seconds = ack_seconds
    if getattr(ProducerBuffer, "_cityops_flush_complete", False):
        return
    init, put, flush = ProducerBuffer.__init__, ProducerBuffer.put, ProducerBuffer.flush

    def __init__(self: ProducerBuffer, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        self._cityops_unacknowledged = set()

    def tracked_put(self: ProducerBuffer, fut: FutureMessage) -> None:
        self._cityops_unacknowledged.add(fut)
        fut.add_done_callback(self._cityops_unacknowledged.discard)  # a FutureMessage resolves on the broker's ack
        put(self, fut)

    async def complete_flush(self: ProducerBuffer) -> None:
        if self.state != "running":
            # Stopping: the task that hands messages to the driver is ending and no commit follows.
            return await flush(self)
        waiting = list(self._cityops_unacknowledged)
        if not waiting:
            return
        _, pending = await asyncio.wait(waiting, timeout=ProducerBuffer._cityops_ack_seconds)
        if pending:
            raise ProducerSendError(f"{len(pending)} of {len(waiting)} buffered message(s) not acknowledged within "
                                    f"{ProducerBuffer._cityops_ack_seconds:.0f} s")
        failed = [f for f in waiting if f.cancelled() or f.exception() is not None]
        if failed:
            cause = None if failed[0].cancelled() else failed[0].exception()
            raise ProducerSendError(f"{len(failed)} of {len(waiting)} buffered message(s) were not produced") from cause

    ProducerBuffer.__init__, ProducerBuffer.put = __init__, tracked_put
    ProducerBuffer.flush = complete_flush
    ProducerBuffer._cityops_flush_complete = True


async def read_again_from_commit(consumer: Consumer, tp) -> int | None:
    """Read a partition again from its commit, in this process: its records since then come again,
    in order, and the stages take them again (the ids make that harmless); those fetched meanwhile
    out of turn are dropped until the commit's record arrives (`reread_skipped_offsets`). For a
    stalled partition: records Faust fetched and never handed to a stage hold its commit back for
    good (`commit_no_hole_at_the_head`). Returns the commit read from (None: nothing committed yet)."""
    tp = ensure_TP(tp)
    committed = consumer._committed_offset.get(tp)
    if committed is not None:
        await _read_again_from(consumer, tp, committed)
    return committed


async def _read_again_from(consumer: Consumer, tp, offset: int) -> None:
    """The partition sought back to `offset`, which the re-read then waits for (ReadOffsets); the
    last delivered offset put just below it, or the fetch loop drops the records as already read."""
    offsets: ReadOffsets = consumer._read_offset
    offsets.rereading[tp] = offset
    dict.__setitem__(offsets, tp, offset - 1 if offset > 0 else None)
    await consumer._seek(tp, offset)


def describe_partition(consumer: Consumer, tp) -> str:
    """What Faust and aiokafka hold for one partition, for the log of a stalled partition: Faust's
    commit, last delivered offset, acknowledged offsets, a re-read waited for, and whether it is
    paused or held back as buffer-full; aiokafka's position and pause. Read across threads: a
    snapshot for a person, not for decisions."""
    try:
        return _partition_facts(consumer, ensure_TP(tp))
    except Exception as exc:  # noqa: BLE001 - a diagnostic never fails the caller
        return f"not readable ({type(exc).__name__})"


def _partition_facts(consumer: Consumer, tp) -> str:
    acked = list(consumer._acked.get(tp, ()))
    facts = {
        "committed": consumer._committed_offset.get(tp),
        "delivered": consumer._read_offset.get(tp),
        "rereading": getattr(consumer._read_offset, "rereading", {}).get(tp),
        "acked": f"{len(acked)} [{min(acked)}..{max(acked)}]" if acked else 0,
        "active": tp in (consumer._active_partitions or ()),
        "paused": tp in consumer._paused_partitions,
        "buffer_full": tp in consumer._buffered_partitions,
        "unacked": sum(1 for m in list(consumer._unacked_messages) if m.tp == tp),
    }
    driver = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    try:
        state = driver._subscription.subscription.assignment.state_value(tp)
        facts.update(aiokafka_position=state.position if state.has_valid_position else None,
                     aiokafka_paused=state.paused, aiokafka_buffered=tp in driver._fetcher._records)
    except Exception as exc:  # noqa: BLE001 - a diagnostic never fails the caller
        facts["aiokafka"] = type(exc).__name__
    return ", ".join(f"{k}={v}" for k, v in facts.items())
