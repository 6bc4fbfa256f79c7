"""The ClickHouse store: one code path through clickhouse-connect for a server (`http(s)://`)
and for embedded chDB (`chdb:///abs/path`).

Ownership: chDB locks its data directory to one process. In cityops that process is
`cityops api` (its sink writes; its routes answer reads such as `/stats/`). Anything else
that needs figures asks the api over HTTP, or points at a ClickHouse server instead.

Idempotence, twice over: each batch carries an `insert_deduplication_token` made from its
rows (a retried batch is dropped by the server), and every table is a ReplacingMergeTree
keyed by the message's deterministic id (a replay that batches differently still collapses),
so exact figures read with FINAL.
"""

from __future__ import annotations

from infra.store.client import StoreUnavailable
from infra.store.reads import StoreReads
from infra.store.writes import StoreWrites

__all__ = ["Store", "StoreUnavailable"]


class Store(StoreWrites, StoreReads):
    """The store as `cityops api` and its sink use it: the write path and every read on one client
    (client.py), the SQL in queries.py, the rows in rows.py."""
