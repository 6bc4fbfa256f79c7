"""The connection to ClickHouse: one code path through clickhouse-connect for a server
(`http(s)://`) and for embedded chDB (`chdb:///abs/path`), one query at a time."""

from __future__ import annotations

import datetime as dt
import threading

import clickhouse_connect
from clickhouse_connect.driver.binding import DT64Param

from infra.settings import redact_url


class StoreUnavailable(RuntimeError):
    pass


def with_fractions(parameters: dict | None) -> dict | None:
    """The parameters with each instant bound to the microsecond: clickhouse-connect renders a plain
    datetime to the whole second, so `reported_at <= now` missed what came in earlier in the same second
    (an Open311 app listing the request it had just made, in one clean-clone run)."""
    if not parameters:
        return parameters

    def bound(value):
        if isinstance(value, dt.datetime):
            return DT64Param(value)
        if isinstance(value, (list, tuple)) and any(isinstance(v, dt.datetime) for v in value):
            return type(value)(bound(v) for v in value)
        return value

    return {name: bound(value) for name, value in parameters.items()}


class StoreClient:
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

    def _columns(self, table: str) -> list[str]:
        return [r[0] for r in self.query("SELECT name FROM system.columns WHERE database = '{db}' "
                                         "AND table = %(table)s ORDER BY position", {"table": table})]

    def query(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        with self._lock:
            return self._client.query(sql.replace("{db}", self.database), parameters=with_fractions(parameters)).result_rows

    def count(self, table: str, *, final: bool = True) -> int:
        return self.query(f"SELECT count() FROM {{db}}.{table}{' FINAL' if final else ''}")[0][0]

    def _query_result(self, sql: str, parameters: dict | None = None):
        with self._lock:
            return self._client.query(sql.replace("{db}", self.database), parameters=with_fractions(parameters))

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def __enter__(self) -> StoreClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
