"""Batch records between stages (schemas/batches.py, agents.wiring.Outbox): what goes in comes out,
in order, on the partition Kafka's default partitioner gives each key, within the record size; a
record's future settles every message it carries."""

from __future__ import annotations

import asyncio

import pytest
from kafka.partitioner.default import murmur2

from agents.wiring import Outbox
from schemas import TaskEvent
from schemas.batches import BATCH_HEADER, BrokenBatch, batch_count, messages_of, pack, placed_messages


def test_a_packed_record_gives_back_its_messages_and_a_plain_record_its_value():
    values = [b'{"a": "line one\\nstill one"}', b'{"b": 2}', b"{}"]
    value, headers = pack(values)
    assert headers == [(BATCH_HEADER, b"3")]
    assert messages_of(value, headers) == values
    assert messages_of(value, dict(headers)) == values  # Faust gives headers as a dict
    assert messages_of(b'{"alone": 1}', [("other", b"x")]) == [b'{"alone": 1}']
    assert messages_of(None, None) == [None]  # a forget request
    assert batch_count(None) is None
    assert placed_messages(value, headers) == list(enumerate(values))  # each with its place, for a dead letter
    assert placed_messages(b"{}", None) == [(None, b"{}")]


def test_a_batch_record_that_does_not_hold_what_it_announces_is_refused():
    value, _ = pack([b"{}", b"{}"])
    with pytest.raises(BrokenBatch, match="announcing 3 messages holds 2 lines"):
        messages_of(value, [(BATCH_HEADER, b"3")])


def test_a_json_message_never_breaks_a_line():
    event = TaskEvent(event_id="e", task_id="t", incident_id="i", unit="u", kind="accepted",
                      at="2026-12-01T08:00:00+08:00", by="clerk", note="第一行\n第二行\r\n")
    value, headers = pack([event.model_dump_json().encode()] * 2)
    assert [TaskEvent.model_validate_json(m) for m in messages_of(value, headers)] == [event, event]


def records(outbox: Outbox) -> list:
    return [(topic, partition, key, messages_of(value, headers), waiting)
            for topic, partition, key, value, headers, waiting in outbox.records()]


def test_the_outbox_puts_each_key_on_kafkas_default_partition_in_the_order_sent():
    async def run():
        outbox = Outbox(partitions=4)
        keys = [f"task-{n}".encode() for n in range(40)]
        for n, key in enumerate(keys):
            outbox.add("task-events", key, b'{"n": %d}' % n)
        outbox.add("manual", b"task-1", b'{"m": 1}')
        return keys, records(outbox), records(outbox)

    keys, sent, again = asyncio.run(run())
    assert again == []  # emptied
    on = {}
    for topic, partition, _, messages, _ in sent:
        for message in messages:
            on[(topic, message)] = partition
    expected = {(b'{"n": %d}' % n): (murmur2(key) & 0x7FFFFFFF) % 4 for n, key in enumerate(keys)}
    assert {m: p for (t, m), p in on.items() if t == "task-events"} == expected
    assert on[("manual", b'{"m": 1}')] == (murmur2(b"task-1") & 0x7FFFFFFF) % 4
    for topic, partition, _, messages, _ in sent:  # in the order sent within each partition
        if topic == "task-events":
            numbers = [int(m[6:-1]) for m in messages]
            assert numbers == sorted(numbers)
    assert len(sent) == 5  # one record per (topic, partition) that has messages


def test_records_stay_under_the_size_limit_and_a_record_settles_all_its_messages():
    async def run():
        outbox = Outbox(partitions=1)
        big = b"x" * (Outbox.MAX_RECORD_BYTES // 3)
        futures = [outbox.add("manual", b"k", big) for _ in range(7)]
        sent = list(outbox.records())
        for _, _, _, _, _, waiting in sent:
            done = asyncio.get_running_loop().create_future()
            done.set_result("on the broker")
            waiting.settle(done)
        return sent, await asyncio.gather(*futures)

    sent, results = asyncio.run(run())
    assert [len(messages_of(value, headers)) for _, _, _, value, headers, _ in sent] == [2, 2, 2, 1]
    assert all(len(value) <= Outbox.MAX_RECORD_BYTES for _, _, _, value, _, _ in sent)
    assert results == ["on the broker"] * 7


def test_a_record_the_broker_refused_fails_every_message_in_it():
    async def run():
        outbox = Outbox(partitions=1)
        futures = [outbox.add("manual", b"k", b"{}") for _ in range(3)]
        [(*_, waiting)] = list(outbox.records())
        refused = asyncio.get_running_loop().create_future()
        refused.set_exception(RuntimeError("broker refused"))
        waiting.settle(refused)
        return await asyncio.gather(*futures, return_exceptions=True)

    assert [str(r) for r in asyncio.run(run())] == ["broker refused"] * 3
