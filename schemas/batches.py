"""A batch record: many messages for one partition of a topic that only cityops stages read, in one
Kafka record. Each costs a stage one delivery and the broker one record, where a message per record
cost them one each (BENCHMARKS.md, "The pipeline against a naive Faust agent").

The record's value is the messages' JSON, one per line (JSON escapes every newline inside a string,
so a line is a whole message); its `cityops-batch` header gives their number. A record without the
header is one message, as integrators and the api produce: a reader takes both (`messages_of`).
Each message keeps its own deterministic id, so a batch delivered again is absorbed as each of its
messages would be. Forget requests (no value, agents/retention.py) always travel alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BATCH_HEADER = "cityops-batch"


class BrokenBatch(ValueError):
    """A batch record whose lines do not match its header's count."""


def pack(values: Sequence[bytes]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """(value, headers) of the batch record carrying `values` (each one message's JSON)."""
    return b"\n".join(values), [(BATCH_HEADER, str(len(values)).encode())]


def batch_count(headers: Iterable[tuple[str, bytes]] | dict | None) -> int | None:
    """The number of messages a record's headers announce; None: a record of one message."""
    for name, value in (headers.items() if isinstance(headers, dict) else headers or ()):
        if name == BATCH_HEADER:
            return int(value)
    return None


def placed_messages(value: bytes | None, headers: Iterable[tuple[str, bytes]] | dict | None,
                    ) -> list[tuple[int | None, bytes | None]]:
    """(place in the batch record, message) of each message a record carries; the place is None for a
    record of one message (what a dead letter names: `DeadLetter.batch_index`)."""
    if batch_count(headers) is None:
        return [(None, value)]
    return list(enumerate(messages_of(value, headers)))


def messages_of(value: bytes | None, headers: Iterable[tuple[str, bytes]] | dict | None) -> list[bytes | None]:
    """The messages a record carries: its lines if it is a batch record, else its value alone."""
    count = batch_count(headers)
    if count is None:
        return [value]
    lines = (value or b"").split(b"\n")
    if len(lines) != count:
        raise BrokenBatch(f"a batch record announcing {count} messages holds {len(lines)} lines")
    return lines
