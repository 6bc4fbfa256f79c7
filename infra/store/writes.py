"""The write path: batches of messages stored idempotently, then what is derived from them brought
up to date for the days they touched: the SLA rollup (a row per dimension value, source and day),
its sealed rows (the days before the last `recent_days`, one row per value) and the hourly
activity counts."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources

from pydantic import BaseModel

from infra.store.client import StoreClient
from infra.store.queries import (
    COPIES,
    COPY_INSTANTS,
    DERIVED_TABLES,
    OPEN_SQL,
    ROLLUP_REFRESH_SQL,
    SEAL_SQL,
    SLA_DIMENSIONS,
    activity_refresh_sql,
)
from infra.store.rows import TABLES
from schemas import TaskState, TaskUpdate

# How often the sink's inserts drop closed tasks from open_tasks for good (one merge of that table).
OPEN_TASKS_CLEANUP_SECONDS = 60.0
RECENT_DAYS = 14
ROLLUP_TASKS_PER_QUERY = 20_000  # about a busy city's day (22,287 tasks: 143 ms, BENCHMARKS.md)
SEAL_EVERY_SECONDS = 30.0


def _chunks(days: list[dt.date], size: int = 31) -> Iterator[list[dt.date]]:
    """Days a month at a time: one recomputation query each, its IN list bounded."""
    return (days[first:first + size] for first in range(0, len(days), size))


def _utc_day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.timezone.utc).date()


def _board_keys(task: TaskState) -> list[tuple[str, str]]:
    """(dimension, key) of each rollup row the task counts in (ROLLUP_REFRESH_SQL's keys)."""
    return [("total", "total"), *((d, "" if (v := getattr(task, d)) is None else str(v)) for d in SLA_DIMENSIONS)]


def newest_tasks(tasks: Iterable[TaskState]) -> list[TaskState]:
    """Each task once, at its highest version: the rows the table keeps (ReplacingMergeTree(version)),
    so a batch holding a task's whole history (a replayed order: five updates) stores one row of it."""
    newest: dict[str, TaskState] = {}
    for task in tasks:
        if (kept := newest.get(task.task_id)) is None or task.version >= kept.version:
            newest[task.task_id] = task
    return list(newest.values())


class StoreWrites(StoreClient):
    def __init__(self, url: str, database: str = "cityops", *, recent_days: int = RECENT_DAYS):
        super().__init__(url, database)
        self.recent_days = recent_days  # the rollup's days the board merges one by one (the rest: sealed)
        self._sealed_through: dt.date | None = None  # as this process last sealed or read it
        self._latest_day: dt.date | None = None  # the latest dispatch day stored, as far as this process knows
        # Values whose sealed days changed (sla_unsealed) are merged again at most every `seal_every`
        # seconds: one value's merge reads all its sealed days (a quarter to one second at 10 M events).
        self.seal_every = SEAL_EVERY_SECONDS
        self._sealed_at = time.monotonic()
        # Whether sla_unsealed may hold values to merge: at start (a process killed before its merge),
        # and after each mark; so the idle sink does not ask the store every second for nothing.
        self._maybe_unsealed = True
        self._open_tasks_cleaned = time.monotonic()

    def migrate(self) -> list[str]:
        """Apply every DDL file in infra/store/sql in name order; each is idempotent."""
        applied = []
        existed = {r[0] for r in self.query("SELECT name FROM system.tables WHERE database = '{db}'")}
        # The rollup and its sealed rows are derived from task_days: sorted otherwise or with other
        # columns (a store from an earlier version), they are dropped, made again and recomputed.
        remade = set()
        for table, (order, columns) in DERIVED_TABLES.items():
            found = self.query("SELECT sorting_key FROM system.tables WHERE database = '{db}' AND name = %(table)s",
                               {"table": table})
            if found and (found[0][0] != order or set(self._columns(table)) != set(columns)):
                self.query(f"DROP TABLE {{db}}.{table}")
                remade.add(table)
        with self._lock:
            self._client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            for sql in sorted(resources.files("infra.store").joinpath("sql").iterdir(), key=lambda p: p.name):
                if sql.name.endswith(".sql"):
                    self._client.command(sql.read_text(encoding="utf-8").replace("{db}", self.database)
                                         .replace("{open}", OPEN_SQL))
                    applied.append(sql.name)
        # A store from before one of the copies: the rows go through every view on their table once
        # (the copies collapse with their originals), then the rollups are computed.
        new_copies = False
        for table, copies in COPIES.items():
            if not {f"{copy}_mv" for copy in copies} <= existed and self.count(table, final=False) > 0:
                self.query(f"INSERT INTO {{db}}.{table} SELECT * FROM {{db}}.{table}")
                new_copies = True
        if new_copies or "sla_rollup" in remade:
            self.refresh_rollup()
            self.refresh_activity()
            self.clean_open_tasks()
        else:  # a store from before sla_sealed, or whose seal line has moved on since
            self._keep_sealed()
        return applied

    def insert(self, *batches: Sequence[BaseModel]) -> int:
        """Insert batches of messages, each of one type, then bring the SLA rollup and the activity
        counts up to date once for the days they touched; safe to call again with the same batches (a
        retried batch, dropped as a duplicate, still gets its days recomputed: harmless)."""
        touched: dict[str, set[dt.date]] = defaultdict(set)  # copy → days to recompute
        stored = sum(self._insert_batch(batch, touched) for batch in batches if batch)
        if touched["task_days"]:  # tasks were stored: the rollup's days are their dispatch days
            # Before their days' rows change: a value with a sealed day among them is read from the
            # rollup until it is sealed again.
            self._mark_unsealed([m.task if isinstance(m, TaskUpdate) else m for batch in batches for m in batch
                                 if isinstance(m, TaskUpdate | TaskState)])
            self.refresh_rollup(touched["task_days"])
            self._keep_sealed(touched["task_days"])
            if time.monotonic() - self._open_tasks_cleaned > OPEN_TASKS_CLEANUP_SECONDS:
                self.clean_open_tasks()
        self._refresh_activity({copy: days for copy, days in touched.items() if days})
        return stored

    def _insert_batch(self, messages: Sequence[BaseModel], touched: dict[str, set[dt.date]]) -> int:
        if isinstance(messages[0], TaskUpdate):  # the task stage's output: the event, the task after it, and
            # for a task just opened its dispatch (the `dispatched` event carries it)
            return sum(self._insert_batch(batch, touched) for batch in (
                [u.event for u in messages], newest_tasks(u.task for u in messages),
                [u.event.dispatch for u in messages if u.event.dispatch is not None]) if batch)
        stored = self._insert(messages)
        for copy in COPIES.get(TABLES[type(messages[0])][0], ()):
            if instant := COPY_INSTANTS.get(copy):  # (open_tasks is not counted per day)
                touched[copy].update(_utc_day(at) for m in messages if (at := getattr(m, instant)) is not None)
        return stored

    def _insert(self, messages: Sequence[BaseModel]) -> int:
        table, to_row = TABLES[type(messages[0])]
        rows = [to_row(m) for m in messages]
        columns = list(rows[0])
        # The token covers whole rows, not just ids: a retried batch is dropped, but a message that
        # legitimately changed (a new reason for the same incident in the queue) is stored.
        token = hashlib.sha256(b"\n".join(m.model_dump_json().encode() for m in messages)).hexdigest()
        with self._lock:
            self._client.insert(
                # Column by column: what the native format sends, so the client does not turn rows
                # round (a third to a half of its time on 10,000 task events, BENCHMARKS.md).
                f"{self.database}.{table}", [[r[c] for r in rows] for c in columns], column_names=columns,
                column_oriented=True,
                # A batch of history spans as many months as the history does (the tables are partitioned
                # by month): ClickHouse's default of 100 per insert refused a batch of the replied
                # messages for good, a stop of the sink that no retry could end.
                settings={"insert_deduplication_token": f"{table}:{token}", "max_partitions_per_insert_block": 0},
            )
        return len(rows)

    def clean_open_tasks(self) -> None:
        """Drop the tasks no longer open from open_tasks for good (FINAL already leaves them out): a
        merge of that small table, so its size follows the open work. Safe at any time."""
        self.query("OPTIMIZE TABLE {db}.open_tasks FINAL CLEANUP")
        self._open_tasks_cleaned = time.monotonic()

    def refresh_rollup(self, days: Iterable[dt.date] | None = None) -> int:
        """Recompute the SLA rollup's rows of these dispatch days (UTC) from task_days; None: every
        day there is, and the sealed rows after them. Safe to repeat: the newest rows of a day win.
        Returns the days recomputed."""
        every_day = days is None
        days = self._days(days, ["task_days"])
        # Days packed by their tasks: each group holds two histograms (4 KB each), so the memory a
        # recomputation takes grows with the tasks asked at once (BENCHMARKS.md, "Histograms"), while
        # each query has a fixed cost (≈27 ms on chDB): a day per query took 33 s over the 1,200 days
        # of the replied messages (2 tasks a day), where a busy live day still goes alone.
        for chunk in self._days_by_tasks(days):
            self.query(ROLLUP_REFRESH_SQL, {"days": chunk})
        if every_day:
            self._sealed_through = None
            self._keep_sealed(again=True)
        return len(days)

    def _days_by_tasks(self, days: list[dt.date]) -> Iterator[list[dt.date]]:
        """`days` in runs of at most ROLLUP_TASKS_PER_QUERY tasks (a day with more: alone)."""
        if len(days) <= 1:
            yield from ([days] if days else [])
            return
        tasks = dict(self.query("SELECT day, count() FROM {db}.task_days WHERE day IN %(days)s GROUP BY day",
                                {"days": days}))
        chunk, held = [], 0
        for day in days:
            if chunk and held + tasks.get(day, 0) > ROLLUP_TASKS_PER_QUERY:
                yield chunk
                chunk, held = [], 0
            chunk.append(day)
            held += tasks.get(day, 0)
        yield chunk

    def seal(self, through: dt.date, values: Iterable[tuple[str, str]] | None = None) -> None:
        """Merge the rollup's days before `through` into sla_sealed: for these (dimension, key) values,
        or None: for every value, dropping the rows of an earlier `through`. Safe to repeat: the
        newest row of a value wins."""
        parameters: dict = {"through": through}
        if values is None:
            self.query(SEAL_SQL.replace("{pairs}", ""), parameters)
            self.query("ALTER TABLE {db}.sla_sealed DELETE WHERE through < toDate(%(through)s)", parameters)
            self.query("TRUNCATE TABLE {db}.sla_unsealed")
        elif values := sorted(values):
            self.query(SEAL_SQL.replace("{pairs}", "AND (dimension, key) IN %(pairs)s"), parameters | {"pairs": values})
            self._mark(values, sealed=True)
        # One part: a board reads this table FINAL, and merging parts at read time doubled its cost.
        self.query("OPTIMIZE TABLE {db}.sla_sealed FINAL")
        self._sealed_through, self._sealed_at = through, time.monotonic()

    def seal_pending(self, *, now: bool = False) -> None:
        """Merge again the values whose sealed days changed: each insert asks, and they are merged once
        `seal_every` has passed since the last merge; the idle sink asks with `now`."""
        if not self._maybe_unsealed or (not now and time.monotonic() - self._sealed_at < self.seal_every):
            return
        if values := self.query("SELECT dimension, key FROM {db}.sla_unsealed FINAL WHERE NOT sealed"):
            self.seal(self._sealed_through or self.sealed_through(), [tuple(v) for v in values])
        self._maybe_unsealed = False  # (the sink marks and merges in turn, never at once)

    def _mark_unsealed(self, tasks: Sequence[TaskState]) -> None:
        if self._sealed_through is None:
            self._sealed_through = self.sealed_through()
        if values := {v for t in tasks if _utc_day(t.dispatched_at) < self._sealed_through for v in _board_keys(t)}:
            self._mark(sorted(values), sealed=False)

    def _mark(self, values: Sequence[tuple[str, str]], *, sealed: bool) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self._maybe_unsealed |= not sealed
        with self._lock:
            self._client.insert(f"{self.database}.sla_unsealed", [[d, k, sealed, now] for d, k in values],
                                column_names=["dimension", "key", "sealed", "marked_at"])

    def sealed_through(self) -> dt.date:
        """The day the sealed rows end before (1970-01-01: none sealed)."""
        return self.query("SELECT max(through) FROM {db}.sla_sealed")[0][0]

    def _keep_sealed(self, days: Iterable[dt.date] = (), *, again: bool = False) -> None:
        """After the rollup's `days` were recomputed: move `through` when the latest day has moved on
        (everything sealed again, about once a day), else merge again the values whose sealed days
        changed, when due; `again`: every value (the whole rollup was recomputed)."""
        if self._latest_day is None or self._sealed_through is None:
            self._latest_day = self.query("SELECT max(day) FROM {db}.sla_rollup")[0][0]
            self._sealed_through = self.sealed_through()
        self._latest_day = max([self._latest_day, *days])
        through = self._latest_day - dt.timedelta(days=self.recent_days)
        if through > self._sealed_through or again:
            self.seal(max(through, self._sealed_through))
        else:
            self.seal_pending()

    def refresh_activity(self, days: Iterable[dt.date] | None = None) -> int:
        """Recompute the hourly counts (activity_hours) of these UTC days from every day-ordered copy;
        None: every day there is. Safe to repeat: the newest counts of an hour win."""
        days = self._days(days, COPY_INSTANTS)
        for chunk in _chunks(days):
            self._refresh_activity(dict.fromkeys(COPY_INSTANTS, chunk))
        return len(days)

    def _days(self, days: Iterable[dt.date] | None, copies: Iterable[str]) -> list[dt.date]:
        """`days` in order, once each; None: every day the copies hold."""
        if days is None:
            days = {r[0] for r in self.query(" UNION DISTINCT ".join(f"SELECT DISTINCT day FROM {{db}}.{copy}"
                                                                       for copy in copies))}
        return sorted(set(days))

    def _refresh_activity(self, days_by_copy: dict[str, Iterable[dt.date]]) -> None:
        if days_by_copy:
            self.query(activity_refresh_sql(days_by_copy), {copy: sorted(days) for copy, days in days_by_copy.items()})
