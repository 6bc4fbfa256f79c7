"""Faust as corrected by agents.faust_patches: a flush before a commit waits for every buffered
message, however slowly each one leaves (no broker needed: the channel is a stand-in for the
driver, which is what the buffer hands messages to); a partition read again moves only on the
offset it waits for; a commit never passes over a record no stage acknowledged."""

from __future__ import annotations

import asyncio
import types

import faust
import pytest
from faust.exceptions import ProducerSendError
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from faust.types.tuples import FutureMessage, PendingMessage

from agents.faust_patches import (
    apply_faust_patches,
    commit_no_hole_at_the_head,
    describe_partition,
    make_producer_flush_complete,
    read_again_from_commit,
)


class SlowDriver:
    """Hands each message on after `delay` s (a loaded event loop, a full accumulator), then the
    broker acknowledges it, or refuses the ones listed."""

    def __init__(self, delay: float, refused: set[int] = frozenset(), unanswered: set[int] = frozenset()):
        self.delay, self.refused, self.unanswered = delay, refused, unanswered

    async def publish_message(self, fut: FutureMessage, wait: bool = False):
        await asyncio.sleep(self.delay)
        if fut.message.key in self.unanswered:  # a producer stopped under it: no answer ever comes
            return fut
        if fut.message.key in self.refused:
            fut.set_exception(RuntimeError("broker refused"))
        else:
            fut.set_result(None)
        return fut


def message(driver: SlowDriver, key: int) -> FutureMessage:
    return FutureMessage(PendingMessage(driver, key, None, None, None, None, None, None, None, None, None, None))


async def flushed(driver: SlowDriver, count: int, ack_seconds: float = 60) -> list[FutureMessage]:
    make_producer_flush_complete(ack_seconds)
    buffer = ProducerBuffer()
    buffer.app = types.SimpleNamespace(conf=types.SimpleNamespace(producer_threaded=False))
    await buffer.start()
    try:
        sent = [message(driver, key) for key in range(count)]
        for fut in sent:
            buffer.put(fut)
        await buffer.flush()
        return sent
    finally:
        await buffer.stop()


def test_flush_returns_only_once_every_buffered_message_is_acknowledged():
    # Unpatched, flush gave up after 0.1 s without a message leaving and returned with 2 queued.
    sent = asyncio.run(flushed(SlowDriver(delay=0.15), count=3))
    assert all(f.done() and f.exception() is None for f in sent)


def test_flush_raises_when_a_buffered_message_was_refused():
    with pytest.raises(ProducerSendError, match="1 of 3"):
        asyncio.run(flushed(SlowDriver(delay=0.01, refused={1}), count=3))


def test_flush_gives_up_on_a_message_never_acknowledged_so_the_commit_fails_instead_of_waiting_for_good():
    with pytest.raises(ProducerSendError, match="1 of 3 buffered message.s. not acknowledged within 0 s"):
        asyncio.run(flushed(SlowDriver(delay=0.01, unanswered={2}), count=3, ack_seconds=0.3))


def test_while_a_partition_is_read_again_only_its_expected_offset_moves_the_read_position():
    from agents.faust_patches import ReadOffsets

    offsets = ReadOffsets()
    offsets["tp"] = 114
    offsets.rereading["tp"] = 115  # a jump to 241 was seen: read again from 115
    offsets["tp"] = 241  # a record fetched before the seek: ignored
    assert offsets["tp"] == 114 and offsets.rereading == {"tp": 115}
    offsets["tp"] = 115  # the re-read reached the first skipped offset
    offsets["tp"] = 116
    assert offsets["tp"] == 116 and offsets.rereading == {}
    assert offsets["other"] is None  # as Faust's defaultdict: nothing read yet


TOPIC = TP("t", 0)


def consumer_with(committed: int | None, acked: list[int]):
    commit_no_hole_at_the_head()
    consumer = faust.App("test-commit", broker="kafka://127.0.0.1:1").consumer  # never started: no broker needed
    consumer._committed_offset[TOPIC] = committed
    consumer._acked[TOPIC] = list(acked)
    consumer._acked_index[TOPIC] = set(acked)
    return consumer


def test_acked_records_from_the_commit_on_are_committed():
    assert consumer_with(10, [10, 11, 12])._new_offset(TOPIC) == 13


def test_a_record_at_the_commit_not_acknowledged_holds_the_commit_back():
    # Faust itself returned 13 here: offset 10, never acknowledged, was committed over and lost.
    consumer = consumer_with(10, [11, 12])
    assert consumer._new_offset(TOPIC) is None
    assert consumer._acked[TOPIC] == [11, 12]  # kept for the commit once 10 is acknowledged
    consumer._acked[TOPIC].insert(0, 10)
    assert consumer._new_offset(TOPIC) == 13


def test_the_first_commit_of_a_partition_and_a_commit_at_zero():
    assert consumer_with(None, [5, 6])._new_offset(TOPIC) == 7  # nothing committed yet: from what was read
    assert consumer_with(0, [1, 2])._new_offset(TOPIC) is None  # Faust skipped its check at 0


def test_a_stalled_partition_is_described_from_what_faust_holds():
    consumer = consumer_with(10, [11, 12])
    facts = describe_partition(consumer, TOPIC)
    assert "committed=10" in facts and "acked=2 [11..12]" in facts and "unacked=0" in facts
    assert "aiokafka=" in facts  # no driver before the consumer starts: said, not raised


def test_a_stalled_partition_is_read_again_from_its_commit():
    """Records fetched past the commit and never handed to a stage: the partition is sought back to
    its commit, and the fetch loop's read position put below it so those records are not dropped as
    already read; records out of turn wait for the commit's record (the re-read machinery)."""
    apply_faust_patches()
    consumer = consumer_with(10, [17, 18])
    consumer._read_offset[TOPIC] = 18  # delivered up to 18; 10..16 never reached a stage
    sought = []

    async def seek(tp, offset):  # the driver's seek: what the broker's fetch position becomes
        sought.append((tp, offset))

    consumer._seek = seek
    assert asyncio.run(read_again_from_commit(consumer, TOPIC)) == 10
    assert sought == [(TOPIC, 10)]
    assert consumer._read_offset[TOPIC] == 9 and consumer._read_offset.rereading[TOPIC] == 10
    consumer._read_offset[TOPIC] = 12  # a record out of turn moves nothing
    assert consumer._read_offset[TOPIC] == 9
    consumer._read_offset[TOPIC] = 10  # the commit's record: the re-read has begun
    assert consumer._read_offset[TOPIC] == 10 and TOPIC not in consumer._read_offset.rereading
