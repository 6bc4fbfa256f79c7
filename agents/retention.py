"""Bounded memory: a stage's table entries leave after the retention (`CITYOPS_RETENTION_HOURS`),
counted from each entry's own last activity (`pipeline/retention.py`).

A Faust table is written only while a stream event is current (the changelog goes to that
event's partition), so a timer cannot delete an entry itself. It sends a *forget* request through
the stage's own topic instead — no value, the header `cityops-forget` naming the entry, keyed as
the entry's messages are (so it reaches the entry's partition) — and the stage deletes the entry when that request comes round, if the entry has
expired by then (it may have been written again meanwhile; a request from anyone else can delete
nothing that has not expired). The entries are kept in a `DueIndex` by their expiry, so a tick
costs what expires, not what is held; it is rebuilt from the table after a rebalance (the
worker's timer ticks only when the tables are recovered).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import faust

from agents.wiring import FORGET_HEADER, Wiring
from infra import metrics
from pipeline.sla import DueIndex


class Retention:
    def __init__(self, wiring: Wiring, table: faust.Table, name: str, last_at: Callable[[bytes], dt.datetime | None],
                 route: Callable[[str, bytes], tuple[str, bytes]], *, keep: dt.timedelta | None = None,
                 now: Callable[[], dt.datetime] | None = None):
        """`last_at(value)`: the entry's last activity (None: kept, e.g. an open task); `route(key,
        value)`: the topic and message key that bring a request to the entry's partition. `keep` and
        `now` default to the retention setting and the city's clock (`wiring.now`)."""
        self.wiring, self.table, self.name, self.last_at, self.route = wiring, table, name, last_at, route
        self.keep = keep if keep is not None else dt.timedelta(hours=wiring.settings.retention_hours)
        self.now = now or wiring.now
        self.index = DueIndex()
        self.indexed_after = -1  # the rebalance (Faust's count) after which the index was built

    def expires_at(self, value: bytes) -> dt.datetime | None:
        last = self.last_at(value)
        return None if last is None else last + self.keep

    def touched(self, key: str, last_at: dt.datetime | None) -> None:
        """After each write of an entry, with its last activity as `last_at(value)` would find it."""
        self.index.set(key, None if last_at is None else last_at + self.keep)

    async def tick(self) -> None:
        """Send a forget request for every entry expired now (the worker's timer calls this)."""
        now = self.now()
        if self.indexed_after != self.wiring.app.rebalancing_count:  # partitions moved: rebuild
            self.indexed_after = self.wiring.app.rebalancing_count
            self.index.clear()
            for n, (key, value) in enumerate(list(self.table.items())):
                self.index.set(key, self.expires_at(value))
                if n % 1000 == 999:
                    await asyncio.sleep(0)  # a large table must not hold up the stages
        for key in self.index.pop_due(now):
            if (value := self.table.get(key)) is not None:
                topic_name, message_key = self.route(key, value)
                self.wiring.topic(topic_name).send_soon(key=message_key, value=None,
                                                        headers=[(FORGET_HEADER, key.encode())])

    def forget(self, key: str) -> bool:
        """In the stage, on a forget request: delete the entry if it has expired (True if it did)."""
        value = self.table.get(key)
        if value is None:
            return False
        expires = self.expires_at(value)
        if expires is None or expires > self.now():
            self.index.set(key, expires)  # written again meanwhile: its new expiry
            return False
        del self.table[key]
        self.index.set(key, None)
        metrics.TABLE_FORGOTTEN.labels(self.name).inc()
        return True
