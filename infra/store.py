"""The ClickHouse store: one code path through clickhouse-connect for a server (`http(s)://`)
and for embedded chDB (`chdb:///abs/path`).

Ownership: chDB locks its data directory to one process. In cityops that process is the
worker (its sink agent writes; its web views answer reads such as `/stats`). Anything else
that needs figures asks the worker over HTTP, or points at a ClickHouse server instead.

Idempotence, twice over: each batch carries an `insert_deduplication_token` made from its
rows (a retried batch is dropped by the server), and every table is a ReplacingMergeTree
keyed by the message's deterministic id (a replay that batches differently still collapses),
so exact figures read with FINAL.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from importlib import resources

import clickhouse_connect
from pydantic import BaseModel

from infra.settings import redact_url
from schemas import Alert, DeadLetter, Dispatch, DutyListVersion, Incident, ManualReview, OperatorDecision, TaskEvent


class StoreUnavailable(RuntimeError):
    pass


def _incident_row(m: Incident) -> dict:
    row = m.model_dump(exclude={"location", "summoned_units"})
    row["lat"] = m.location.lat if m.location else None
    row["lon"] = m.location.lon if m.location else None
    return row


def _dead_letter_row(m: DeadLetter) -> dict:
    row = m.model_dump(exclude={"payload"})
    row["payload_sha256"] = hashlib.sha256(m.payload.encode()).hexdigest()
    return row


def _dutylist_row(m: DutyListVersion) -> dict:
    row = m.model_dump()
    row["yaml_sha256"] = hashlib.sha256(m.yaml.encode()).hexdigest()
    return row


# message type → (table, row function). The only place models meet columns; each table is keyed
# (ORDER BY) on the message's deterministic id.
TABLES: dict[type[BaseModel], tuple[str, Callable[[BaseModel], dict]]] = {
    Incident: ("incidents", _incident_row),
    Dispatch: ("dispatches", BaseModel.model_dump),
    TaskEvent: ("task_events", BaseModel.model_dump),
    ManualReview: ("manual_reviews", BaseModel.model_dump),
    DeadLetter: ("dead_letters", _dead_letter_row),
    DutyListVersion: ("dutylist_versions", _dutylist_row),
    OperatorDecision: ("operator_decisions", BaseModel.model_dump),
    Alert: ("alerts", BaseModel.model_dump),
}


class Store:
    def __init__(self, url: str, database: str = "cityops"):
        self.url = url
        self.database = database
        try:
            self._client = clickhouse_connect.get_client(dsn=url)
        except Exception as exc:
            hint = " (chDB allows one process per data directory: is a worker already running on it?)" if url.startswith("chdb:") else ""
            raise StoreUnavailable(f"cannot open ClickHouse store {redact_url(url)}: {exc}{hint}") from exc
        # The chDB client is in-process and not safe for concurrent use; HTTP clients are cheap
        # to serialise too. Inserts run in a worker thread, reads on the event loop's thread.
        self._lock = threading.Lock()

    def migrate(self) -> list[str]:
        """Apply every DDL file in infra/sql in name order; each is idempotent."""
        applied = []
        with self._lock:
            self._client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            for sql in sorted(resources.files("infra").joinpath("sql").iterdir(), key=lambda p: p.name):
                if sql.name.endswith(".sql"):
                    self._client.command(sql.read_text(encoding="utf-8").replace("{db}", self.database))
                    applied.append(sql.name)
        return applied

    def insert(self, messages: Sequence[BaseModel]) -> int:
        """Insert messages of one type as one batch; safe to call again with the same batch."""
        if not messages:
            return 0
        table, to_row = TABLES[type(messages[0])]
        rows = [to_row(m) for m in messages]
        columns = list(rows[0])
        # The token covers whole rows, not just ids: a retried batch is dropped, but a message that
        # legitimately changed (a new reason for the same incident in the queue) is stored.
        token = hashlib.sha256(b"\n".join(m.model_dump_json().encode() for m in messages)).hexdigest()
        with self._lock:
            self._client.insert(
                f"{self.database}.{table}", [[r[c] for c in columns] for r in rows], column_names=columns,
                settings={"insert_deduplication_token": f"{table}:{token}"},
            )
        return len(rows)

    def query(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        with self._lock:
            return self._client.query(sql.replace("{db}", self.database), parameters=parameters).result_rows

    def count(self, table: str) -> int:
        return self.query(f"SELECT count() FROM {{db}}.{table} FINAL")[0][0]

    def stats(self) -> dict:
        """The figures `cityops demo` prints and the tests check."""
        per_unit = self.query(
            "SELECT unit, count() FROM {db}.dispatches FINAL WHERE role = 'primary' GROUP BY unit ORDER BY count() DESC")
        return {
            "clickhouse_incidents": self.count("incidents"),
            "clickhouse_dispatches": self.count("dispatches"),
            "clickhouse_task_events": self.count("task_events"),
            "manual": self.count("manual_reviews"),
            "merged": self.query("SELECT uniqExact(incident_id) FROM {db}.task_events FINAL WHERE kind = 'merged'")[0][0],
            "hotspots": self.query("SELECT count() FROM {db}.alerts FINAL WHERE kind = 'hotspot'")[0][0],
            "tanpai_refused": self.query("SELECT count() FROM {db}.manual_reviews FINAL WHERE tanpai_refused")[0][0],
            "deadlettered": self.count("dead_letters"),
            "dispatched": sum(n for _, n in per_unit),
            "dispatched_per_unit": dict(per_unit),
        }

    def close(self) -> None:
        with self._lock:
            self._client.close()

