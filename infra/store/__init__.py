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

import datetime as dt
import hashlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources

import clickhouse_connect
from pydantic import BaseModel

from infra.settings import redact_url
from pipeline.lifecycle import ALL, OPEN
from pipeline.rates import rate, sla_rates
from pipeline.sla import FINISH_RUNNING
from schemas import (
    Alert,
    DeadLetter,
    Dispatch,
    DutyListVersion,
    Incident,
    ManualReview,
    OperatorDecision,
    TaskEvent,
    TaskState,
    TaskUpdate,
    WebhookAttempt,
)

# SQL for "open" (pipeline.lifecycle.OPEN), and below for "overdue" (its finish clock running, past the
# deadline: pipeline.sla.FINISH_RUNNING): written once, used by the board, the overdue list and the queue.
OPEN_SQL = f"status IN {tuple(sorted(OPEN))}"
SLA_DIMENSIONS = ("unit", "role", "item_no", "top_class", "source", "district", "street", "community", "grid_code")
# Short names people type (`cityops report sla --by item`), for the columns above.
SLA_ALIASES = {"item": "item_no", "class": "top_class", "grid": "grid_code"}
NOW_SQL = "toDateTime64(%(now)s, 3)"
# The board's figures, each defined once, over task rows (`tasks` / `task_days`): the board of a
# window counts them straight from task_days (SLA_SQL); the rollup keeps them per dimension value,
# source and day (ROLLUP_REFRESH_SQL) and the board of the whole history sums them (ROLLUP_SQL).
# Tasks per status, for /stats/ (the board shows the rates above).
STATUS_COUNTS = tuple((f"status_{status}", f"countIf(status = '{status}')") for status in sorted(ALL))
SLA_COUNTS = (
    ("tasks", "count()"),
    ("returned", "countIf(status = 'returned')"),
    ("open", "countIf(status IN ('dispatched', 'accepted', 'extension_pending'))"),
    ("parked", "countIf(status = 'parked')"),
    ("accepted_in_time", "countIf(accepted_at IS NOT NULL AND accepted_at <= accept_by)"),
    ("accept_due", None), ("handled", "countIf(completed_at IS NOT NULL)"), ("closed", "countIf(closed_at IS NOT NULL)"),
    ("closed_on_time", "countIf(closed_at IS NOT NULL AND completed_at <= finish_by)"),
    ("reworked", "countIf(rework > 0)"), ("supervised", "sum(supervised)"),
    ("escalated", "countIf(escalated_at IS NOT NULL)"), ("overdue_open", None),
    ("evaluated", "countIf(score IS NOT NULL)"), ("resolved", "countIf(score >= 2)"), ("satisfied", "countIf(score = 3)"),
    *STATUS_COUNTS,
)
# The figures (None above) that depend on the instant asked about: the tasks that count whatever the
# instant (`kept`, or None), and those that count once their `deadline` has passed by then (`pending`).
# The rollup keeps the first as `<name>_kept` and the deadlines of the others as `<name>_deadlines`.
SLA_BY_INSTANT = {
    "accept_due": ("status != 'returned' AND accepted_at IS NOT NULL", "accept_by",
                   "status != 'returned' AND accepted_at IS NULL"),
    "overdue_open": (None, "finish_by", f"status IN {FINISH_RUNNING}"),  # the one overdue definition
}
SLA_QUANTILES = (("accept_hours", "accept_working_hours"), ("finish_hours", "finish_working_hours"))
SLA_FIGURES = (*(name for name, _ in SLA_COUNTS), *(name for name, _ in SLA_QUANTILES))
# How often the sink's inserts drop closed tasks from open_tasks for good (one merge of that table).
OPEN_TASKS_CLEANUP_SECONDS = 60.0
OVERDUE_SQL = f"{SLA_BY_INSTANT['overdue_open'][2]} AND finish_by < {NOW_SQL}"


def _by_instant(name: str) -> str:
    kept, deadline, pending = SLA_BY_INSTANT[name]
    return " + ".join([*([f"countIf({kept})"] if kept else []), f"countIf({pending} AND {deadline} < {NOW_SQL})"])


SLA_SQL = f"""
SELECT {{key}} AS key,
    {", ".join(f"{expression or _by_instant(name)} AS {name}" for name, expression in SLA_COUNTS)},
    {", ".join(f"quantilesTDigestIf(0.5, 0.9)({c}, {c} IS NOT NULL) AS {name}" for name, c in SLA_QUANTILES)}
FROM {{db}}.task_days FINAL
WHERE day BETWEEN toDate32(toDateTime64(%(since)s, 3)) AND toDate32(toDateTime64(%(until)s, 3))
  AND dispatched_at >= toDateTime64(%(since)s, 3) AND dispatched_at < toDateTime64(%(until)s, 3) {{source}}
GROUP BY key
ORDER BY tasks DESC, key
"""


# The board of the whole history takes its p50/p90 from histograms of working hours: buckets 5% wide
# from 0.01 h (36 s) on, the last open-ended (from 5,500 h), so a figure is within 2.5% of the exact
# one. Summing such fixed arrays merges a value's days several times faster than TDigest states did,
# most of a board's time (BENCHMARKS.md, "Histograms").
HOURS_BUCKETS, HOURS_LOWEST, HOURS_RATIO = 272, 0.01, 1.05
HISTOGRAM = "_histogram"  # the suffix of a quantile's column in the rollup and its sealed rows


def _histogram(column: str) -> str:
    """The histogram of a group's non-null `column`: HOURS_BUCKETS counts, one per bucket (the
    -Resample combinator counts each row in its bucket's place: a third of sumMap's time)."""
    value = f"ifNull({column}, 0.)"
    bucket = (f"if({value} < {HOURS_LOWEST}, 0, "
              f"least({HOURS_BUCKETS - 1}, 1 + toUInt32(floor(log({value} / {HOURS_LOWEST}) / log({HOURS_RATIO})))))")
    return f"countIfResample(0, {HOURS_BUCKETS}, 1)({column} IS NOT NULL, {bucket})"


def _quantiles(histogram: str, name: str) -> str:
    """[p50, p90] of a histogram (NaN when empty): the geometric middle of the bucket where the
    cumulated count reaches the share (bucket 0, below HOURS_LOWEST: half of it)."""
    cumulated = f"(arrayCumSum({histogram}) AS {name}_cumulated)"
    bucket = f"(arrayFirstIndex(c -> c >= q * {name}_cumulated[-1], {name}_cumulated) - 1)"
    return (f"arrayMap(q -> if({cumulated}[-1] = 0, nan, if({bucket} = 0, {HOURS_LOWEST / 2}, "
            f"{HOURS_LOWEST} * pow({HOURS_RATIO}, {bucket} - 0.5))), [0.5, 0.9])")


def _rollup_columns() -> list[tuple[str, str]]:
    """(column of infra/store/sql/027_sla_rollup.sql, its expression over a day's task rows)."""
    columns = []
    for name, expression in SLA_COUNTS:
        if expression is not None:
            columns.append((name, expression))
            continue
        kept, deadline, pending = SLA_BY_INSTANT[name]
        if kept:
            columns.append((f"{name}_kept", f"countIf({kept})"))
        columns.append((f"{name}_deadlines",
                        f"groupArrayIf(assumeNotNull({deadline}), {pending} AND {deadline} IS NOT NULL)"))
    columns += [(name + HISTOGRAM, _histogram(c)) for name, c in SLA_QUANTILES]
    return columns


EVERY_SOURCE = "*"  # the rollup's (and sla_sealed's) row of a value over every intake source
# A row per value, source and day, and one of every source: what a board without a source reads (a
# quarter of the rows to merge, the intake having four sources).
ROLLUP_REFRESH_SQL = f"""
INSERT INTO {{db}}.sla_rollup (dimension, key, source, day, {", ".join(c for c, _ in _rollup_columns())}, refreshed_at)
SELECT dim.1 AS dimension, dim.2 AS key, row_source, day, {", ".join(e for _, e in _rollup_columns())}, now64(6)
FROM {{db}}.task_days FINAL
ARRAY JOIN [('total', 'total'), {", ".join(f"('{d}', ifNull(toString({d}), ''))" for d in SLA_DIMENSIONS)}] AS dim
ARRAY JOIN [source, '{EVERY_SOURCE}'] AS row_source
WHERE day IN %(days)s
GROUP BY dimension, key, row_source, day
"""


# The rollup's days before the last RECENT_DAYS (counted back from the latest dispatch day stored)
# are sealed: merged once per dimension value and source into sla_sealed (infra/store/sql/040), so the board
# of the whole history sums one row per value for them instead of one per day.
RECENT_DAYS = 14
SEAL_EVERY_SECONDS = 30.0
THROUGH_SQL = "toDateTime64(toDate(%(through)s), 3, 'UTC')"


def _sealed_columns() -> list[tuple[str, str]]:
    """(column of infra/store/sql/040_sla_sealed.sql, its expression over rollup rows before %(through)s)."""
    columns = []
    for name, _ in _rollup_columns():
        if name.endswith("_deadlines"):  # a deadline before `through` has passed for any later instant
            columns += [(name.removesuffix("_deadlines") + "_passed", f"sum(arrayCount(x -> x < {THROUGH_SQL}, {name}))"),
                        (name, f"groupArrayArray(arrayFilter(x -> x >= {THROUGH_SQL}, {name}))")]
        elif name.endswith(HISTOGRAM):
            columns.append((name, f"sumForEach({name})"))
        else:
            columns.append((name, f"sum({name})"))
    return columns


# Each value's row per source, and its row of every source (EVERY_SOURCE), as the rollup has them.
SEAL_SQL = f"""
INSERT INTO {{db}}.sla_sealed (through, dimension, key, source, {", ".join(c for c, _ in _sealed_columns())}, refreshed_at)
SELECT toDate(%(through)s), dimension, key, source, {", ".join(e for _, e in _sealed_columns())}, now64(6)
FROM {{db}}.sla_rollup FINAL
WHERE day < toDate(%(through)s) {{pairs}}
GROUP BY dimension, key, source
"""
# The tables derived from task_days (infra/store/sql/027, 040), with their sort keys and columns: a store
# whose table has others has it made again on migrate (Store.migrate).
DERIVED_TABLES = {
    "sla_rollup": ("dimension, source, day, key",
                   ["dimension", "key", "source", "day", *(c for c, _ in _rollup_columns()), "refreshed_at"]),
    "sla_sealed": ("through, dimension, source, key",
                   ["through", "dimension", "key", "source", *(c for c, _ in _sealed_columns()), "refreshed_at"]),
}


def _board_sum(name: str) -> str:
    if name not in SLA_BY_INSTANT:
        return f"sum({name})"
    counted = f"sum({name}_passed) + sum(arrayCount(x -> x < {NOW_SQL}, {name}_deadlines))"
    return f"sum({name}_kept) + {counted}" if SLA_BY_INSTANT[name][0] else counted


# The board of the whole history: the sealed rows up to `through`, the rollup's days from it on
# (through = 1970-01-01: the rollup alone), and all the rollup's days of a value whose sealed row is
# out of date (sla_unsealed: {unsealed} is given those values, or left out when there are none). The
# dimension asked about and the total, in one query.
_ROLLUP_ROWS = f"""
    SELECT dimension, key, {", ".join(f"0 AS {c}" if c.endswith("_passed") else c for c, _ in _sealed_columns())}
    FROM {{db}}.sla_rollup FINAL
    WHERE dimension IN ('total', %(dimension)s) AND source = %(row_source)s"""
UNSEALED_SQL = f"""AND (dimension, key) NOT IN %(unsealed)s
    UNION ALL {_ROLLUP_ROWS} AND day < toDate(%(through)s) AND (dimension, key) IN %(unsealed)s"""
# The board's quantiles, or none (`quantiles=False`: the map needs the counts only).
BOARD_QUANTILES = {True: ", ".join(f"{_quantiles(f'sumForEach({name}{HISTOGRAM})', name)} AS {name}"
                                   for name, _ in SLA_QUANTILES),
                   False: ", ".join(f"CAST([], 'Array(Float64)') AS {name}" for name, _ in SLA_QUANTILES)}
ROLLUP_SQL = f"""
SELECT dimension = 'total' AS is_total, key, {", ".join(f"{_board_sum(name)} AS {name}" for name, _ in SLA_COUNTS)},
    {{quantiles}}
FROM (
    SELECT dimension, key, {", ".join(c for c, _ in _sealed_columns())}
    FROM {{db}}.sla_sealed FINAL
    WHERE through = toDate(%(through)s) AND dimension IN ('total', %(dimension)s) AND source = %(row_source)s
    {{unsealed}}
    UNION ALL {_ROLLUP_ROWS} AND day >= toDate(%(through)s)
)
GROUP BY dimension, key
ORDER BY tasks DESC, key
"""


QUEUE_SQL = """
SELECT r.incident_id, i.source, i.title, substringUTF8(i.text, 1, 200), i.street, i.district, r.reason, r.candidates,
       r.top_class, r.tanpai_refused, r.queued_at, r.attempt, count() OVER () AS total
FROM {db}.manual_reviews AS r FINAL
LEFT JOIN (SELECT incident_id, max(attempt) AS attempt FROM {db}.dispatches FINAL GROUP BY incident_id) AS d
       ON d.incident_id = r.incident_id
LEFT JOIN (SELECT incident_id, source, title, text, street, district FROM {db}.incidents FINAL) AS i
       ON i.incident_id = r.incident_id
WHERE (d.incident_id = '' OR d.attempt < r.attempt)
  AND r.incident_id NOT IN (SELECT incident_id FROM {db}.operator_decisions FINAL WHERE action = 'close')
  {filters}
ORDER BY r.queued_at, r.incident_id
LIMIT %(limit)s OFFSET %(offset)s
"""
QUEUE_COLUMNS = ("incident_id", "source", "title", "text", "street", "district", "reason", "candidates", "top_class",
                 "tanpai_refused", "queued_at", "attempt")
# A department's view of its tasks: the task, what the problem is and where, and the duty item.
TASK_COLUMNS = ("task_id", "incident_id", "unit", "role", "status", "item_no", "top_class", "dutylist_version",
                "attempt", "reports", "district", "street", "community", "grid_code", "dispatched_at", "accept_by",
                "finish_by", "accepted_at", "completed_at", "verified_at", "closed_at", "returned_at", "return_reason",
                "parked_reason", "review_on", "extensions_requested", "score", "last_event_at", "version")
# What the screen shows of a task that needs attention (overdue, pre-warned, in a clicked grid): only
# open tasks, read from open_tasks (infra/store/sql/028_open_tasks.sql).
ATTENTION_COLUMNS = ("task_id", "unit", "item_no", "street", "grid_code", "status", "dispatched_at", "finish_warn_at",
                     "finish_by", "supervised", "escalated_at")
# What activity_hours counts per UTC hour, each defined once: (the figure, as SQL: one name or one per
# group, the day-ordered copy it is counted from, the instant that places it in an hour, what is
# counted). The screen's trend lines (TREND_FIGURES) and most of /stats/ sum these hours. The counts
# are recomputed for the days an insert touches (Store.refresh_activity); every figure only grows.
ACTIVITY = (
    ("'incidents'", "incident_days", "reported_at", "count()"),
    ("'dispatched'", "task_days", "dispatched_at", "count()"),
    ("'closed'", "task_closings", "closed_at", "count()"),
    ("'closed_on_time'", "task_closings", "closed_at", "countIf(completed_at <= finish_by)"),
    ("concat('event:', kind)", "event_days", "at", "count()"),
    # A report joins a case once, at its own report time: one hour holds all its `merged` events.
    ("'merged_incidents'", "event_days", "at", "uniqExactIf(incident_id, kind = 'merged')"),
    ("'dispatches'", "dispatch_days", "dispatched_at", "count()"),
    ("concat('first_dispatch:', unit)", "dispatch_days", "dispatched_at", "countIf(role = 'primary' AND attempt = 0)"),
    ("'rerouted'", "dispatch_days", "dispatched_at", "countIf(role = 'primary' AND attempt > 0)"),
)
# Each copy's instant, also a field of the message its table stores: the days an insert touches.
COPY_INSTANTS = {table: instant for _, table, instant, _ in ACTIVITY}
# The copies of each table that views keep (infra/store/sql/025–038, each fed by `<copy>_mv`): task_days for
# the board (and the rollup), open_tasks for the screen's lists, the rest for activity_hours.
COPIES = {"tasks": ("task_days", "open_tasks", "task_closings"), "incidents": ("incident_days",),
          "task_events": ("event_days",), "dispatches": ("dispatch_days",)}
TREND_FIGURES = ("incidents", "dispatched", "closed", "closed_on_time")


def _activity_refresh_sql(tables: Iterable[str]) -> str:
    """INSERT … SELECT of the ACTIVITY figures counted from these copies, each for its days %(<copy>)s."""
    return "INSERT INTO {db}.activity_hours (figure, hour, n, refreshed_at)\n" + "\nUNION ALL\n".join(
        f"SELECT {figure} AS figure, toStartOfHour({instant}) AS hour, {counted}, now64(6) FROM {{db}}.{table} FINAL "
        f"WHERE day IN %({table})s GROUP BY figure, hour" for figure, table, instant, counted in ACTIVITY if table in tables)


# A task's timeline: the facts of each event, no free text (a note, a result, or why a task was
# parked may name a citizen): a reason only for a return, one of its set phrases or 'other'.
TIMELINE_COLUMNS = ("event_id", "kind", "at", "unit", "by", "reason", "days", "review_on", "score", "limit", "due_at")
TIMELINE_SELECT = ", ".join(
    "multiIf(kind != 'returned', NULL, reason IN ('职能不符', '属地不符'), reason, 'other')" if c == "reason" else f"`{c}`"
    for c in TIMELINE_COLUMNS)


def _jsonable(value):
    """A value as JSON says it: instants in ISO 8601 with their offset (the store's are UTC, read naive)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def within_store_range(at: dt.datetime) -> dt.datetime:
    """`at` as ClickHouse can compare it: an instant without an offset is taken as UTC, and one outside
    DateTime64's 1900–2299 is moved to its edge (it matches nothing anyway)."""
    at = at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
    low, high = dt.datetime(1900, 1, 2, tzinfo=dt.timezone.utc), dt.datetime(2299, 12, 30, tzinfo=dt.timezone.utc)
    return min(max(at, low), high)


def _task_filter(*, unit: str | None = None, status: str | None = None,
                 task_id: str | None = None) -> tuple[str, dict]:
    """The WHERE clause and its parameters for a listing of tasks: a unit, a status or 'open', one task."""
    where, parameters = [], {}
    for column, value in (("unit", unit), ("task_id", task_id), ("status", status if status != "open" else None)):
        if value:
            where.append(f"{column} = %({column})s")
            parameters[column] = value
    if status == "open":
        where.append(OPEN_SQL)
    return (f"WHERE {' AND '.join(where)}" if where else ""), parameters


def _chunks(days: list[dt.date], size: int = 31) -> Iterator[list[dt.date]]:
    """Days a month at a time: one recomputation query each, its IN list bounded."""
    return (days[first:first + size] for first in range(0, len(days), size))


def _utc_day(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.timezone.utc).date()


def _board_keys(task: TaskState) -> list[tuple[str, str]]:
    """(dimension, key) of each rollup row the task counts in (ROLLUP_REFRESH_SQL's keys)."""
    return [("total", "total"), *((d, "" if (v := getattr(task, d)) is None else str(v)) for d in SLA_DIMENSIONS)]


def _sla_row(r: tuple) -> dict:
    """A row of SLA_SQL or ROLLUP_SQL (the key, then SLA_FIGURES) as the board shows it."""
    key, f = r[0], dict(zip(SLA_FIGURES, r[1:], strict=True))
    return {
        "key": key, **{name: f[name] for name in ("tasks", "returned", "open", "parked", "overdue_open", "handled",
                                                  "closed", "evaluated", "supervised", "escalated")},
        **sla_rates(f),
        **{f"{name}_p{q}": _hours(f[name], n) for name, _ in SLA_QUANTILES for n, q in enumerate((50, 90))},
    }


def _hours(quantiles: list[float], n: int) -> float | None:
    value = quantiles[n] if quantiles else None
    return None if value is None or value != value else round(value, 2)  # NaN: no rows


class StoreUnavailable(RuntimeError):
    pass


def _incident_row(m: Incident) -> dict:
    # A replayed order's outcome is in its tasks (`replayed`) and their events, not in the report.
    row = m.model_dump(exclude={"location", "summoned_units", "history"})
    row["lat"] = m.location.lat if m.location else None
    row["lon"] = m.location.lon if m.location else None
    return row


def _dead_letter_row(m: DeadLetter) -> dict:
    row = m.model_dump(exclude={"payload"})
    # Letters written before the hash travelled with them: the payload they carry (then never cut).
    row["payload_sha256"] = m.payload_sha256 or hashlib.sha256(m.payload.encode()).hexdigest()
    return row


def _dutylist_row(m: DutyListVersion) -> dict:
    row = m.model_dump()
    row["yaml_sha256"] = hashlib.sha256(m.yaml.encode()).hexdigest()
    return row


def _without(*fields: str) -> Callable[[BaseModel], dict]:
    return lambda m: m.model_dump(exclude=set(fields))


# message type → (table, row function). The only place models meet columns; each table is keyed
# (ORDER BY) on the message's deterministic id.
TABLES: dict[type[BaseModel], tuple[str, Callable[[BaseModel], dict]]] = {
    Incident: ("incidents", _incident_row),
    Dispatch: ("dispatches", BaseModel.model_dump),
    TaskEvent: ("task_events", _without("dispatch", "incident")),  # both are in their own tables
    TaskState: ("tasks", _without("applied")),
    ManualReview: ("manual_reviews", _without("incident")),
    DeadLetter: ("dead_letters", _dead_letter_row),
    DutyListVersion: ("dutylist_versions", _dutylist_row),
    OperatorDecision: ("operator_decisions", BaseModel.model_dump),
    Alert: ("alerts", BaseModel.model_dump),
    WebhookAttempt: ("webhook_attempts", BaseModel.model_dump),
}


class Store:
    def __init__(self, url: str, database: str = "cityops", *, recent_days: int = RECENT_DAYS):
        self.url = url
        self.database = database
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
        try:
            self._client = clickhouse_connect.get_client(dsn=url)
        except Exception as exc:
            hint = " (chDB allows one process per data directory: is a worker already running on it?)" if url.startswith("chdb:") else ""
            raise StoreUnavailable(f"cannot open ClickHouse store {redact_url(url)}: {exc}{hint}") from exc
        # The chDB client is in-process and not safe for concurrent use; HTTP clients are cheap
        # to serialise too. Inserts run in a worker thread, reads on the event loop's thread.
        self._lock = threading.Lock()
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

    def _columns(self, table: str) -> list[str]:
        return [r[0] for r in self.query("SELECT name FROM system.columns WHERE database = '{db}' "
                                         "AND table = %(table)s ORDER BY position", {"table": table})]

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
                [u.event for u in messages], [u.task for u in messages],
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
                f"{self.database}.{table}", [[r[c] for c in columns] for r in rows], column_names=columns,
                settings={"insert_deduplication_token": f"{table}:{token}"},
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
        # A day per query: each group holds two histograms' states (4 KB each), and ten days of the
        # 10 M-event history at once raised the process's RSS by 840 MB, a day at a time by 320 MB
        # (the TDigest rollup's ten days at once: 330 MB); BENCHMARKS.md, "Histograms".
        for day in days:
            self.query(ROLLUP_REFRESH_SQL, {"days": [day]})
        if every_day:
            self._sealed_through = None
            self._keep_sealed(again=True)
        return len(days)

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
            self.query(_activity_refresh_sql(days_by_copy), {copy: sorted(days) for copy, days in days_by_copy.items()})

    def query(self, sql: str, parameters: dict | None = None) -> list[tuple]:
        with self._lock:
            return self._client.query(sql.replace("{db}", self.database), parameters=parameters).result_rows

    def count(self, table: str, *, final: bool = True) -> int:
        return self.query(f"SELECT count() FROM {{db}}.{table}{' FINAL' if final else ''}")[0][0]

    def stats(self) -> dict:
        """The figures `cityops demo` prints, the screen polls and the tests check: the large tables'
        counts summed from activity_hours and the SLA rollup (a few thousand rows, whatever the
        history), the small tables' counted."""
        activity = {figure: n for figure, n in self.query(
            "SELECT figure, sum(n) FROM {db}.activity_hours FINAL GROUP BY figure") if n}

        def group(prefix: str) -> dict[str, int]:
            found = {figure.removeprefix(prefix): n for figure, n in activity.items() if figure.startswith(prefix)}
            return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))

        statuses = ", ".join(f"sumIf({name}, dimension = 'total')" for name, _ in STATUS_COUNTS)
        by_status, returned_primary = self.query(
            f"SELECT [{statuses}], sumIf(returned, dimension = 'role' AND key = 'primary') "
            f"FROM {{db}}.sla_rollup FINAL WHERE dimension IN ('total', 'role') AND source = '{EVERY_SOURCE}'")[0]
        tasks_by_status = {name.removeprefix("status_"): n for (name, _), n in zip(STATUS_COUNTS, by_status) if n}
        manual, requeued, tanpai_refused = self.query(
            "SELECT countIf(attempt = 0), countIf(attempt > 0), countIf(tanpai_refused) FROM {db}.manual_reviews FINAL")[0]
        alerts = dict(self.query("SELECT kind, count() FROM {db}.alerts FINAL GROUP BY kind"))
        per_unit = group("first_dispatch:")
        events = group("event:")
        return {
            "clickhouse_incidents": activity.get("incidents", 0),
            "clickhouse_dispatches": activity.get("dispatches", 0),
            "clickhouse_task_events": sum(events.values()),
            # First routings: each incident is dispatched, merged or queued once (returns are counted apart).
            "manual": manual,
            "merged": activity.get("merged_incidents", 0),
            "hotspots": alerts.get("hotspot", 0),
            "alerts": alerts,
            "clickhouse_tasks": sum(tasks_by_status.values()),
            "tasks_by_status": tasks_by_status,
            "task_events_by_kind": events,
            "rerouted": activity.get("rerouted", 0),
            "requeued": requeued,
            "returned_primary": returned_primary,
            "webhook_attempts": self.count("webhook_attempts"),
            "tanpai_refused": tanpai_refused,
            "closed_without_dispatch": dict(self.query(
                "SELECT close_reason, count() FROM {db}.operator_decisions FINAL WHERE action = 'close' "
                "GROUP BY close_reason")),
            "deadlettered": self.count("dead_letters"),
            "dispatched": sum(per_unit.values()),
            "dispatched_per_unit": per_unit,
        }

    def sla(self, by: str = "unit", now: dt.datetime | None = None, since: dt.datetime | None = None,
            until: dt.datetime | None = None, source: str | None = None, *, quantiles: bool = True) -> dict:
        """The figures city platforms publish, per `by` and in total, from the tasks table (a task is one
        unit's share of an incident): the rates of pipeline.rates.SLA_RATES, their counts,
        supervised (督办) and escalated counts; p50/p90 working hours (TDigest over a
        window; the whole history's from histograms, within 2.5%: HOURS_BUCKETS).
        `now`: the instant the figures are as of (what is overdue then); `since`/`until`: the tasks
        dispatched in that window only; `source`: the tasks of reports from that intake source only;
        `quantiles=False`: the p50/p90 left out (None), for the whole history only (the map's load)."""
        by = SLA_ALIASES.get(by, by)
        if by not in SLA_DIMENSIONS:
            raise ValueError(f"by must be one of {', '.join(SLA_DIMENSIONS)}")
        now = now or dt.datetime.now(dt.timezone.utc)
        parameters = {"now": now.timestamp(), "since": since.timestamp() if since else 0.0,
                      "until": until.timestamp() if until else 1e10,  # 1e10 s: the year 2286
                      "source": source or ""}
        if since is None and until is None:  # the whole history: sealed rows and the rollup's last days
            both = self._whole_history(by, parameters | {"dimension": by, "row_source": source or EVERY_SOURCE}, now,
                                       quantiles)
            rows, total = [r[1:] for r in both if not r[0]], [r[1:] for r in both if r[0]]
        else:  # a window of dispatch times to the millisecond: the tasks themselves
            sql = SLA_SQL.replace("{source}", "AND source = %(source)s" if source else "")
            rows = self.query(sql.replace("{key}", f"ifNull(toString({by}), '')"), parameters)
            total = self.query(sql.replace("{key}", "'total'"), parameters)
        return {"by": by, "now": now.isoformat(), "since": since.isoformat() if since else None,
                "until": until.isoformat() if until else None, "source": source,
                "total": _sla_row(total[0]) if total else None, "rows": [_sla_row(r) for r in rows]}

    def _whole_history(self, by: str, parameters: dict, now: dt.datetime, quantiles: bool) -> list[tuple]:
        """ROLLUP_SQL's rows: where the sealed days end, and which values' sealed rows are out of date
        (both asked in one query before it)."""
        [(through, unsealed)] = self.query(
            "SELECT (SELECT max(through) FROM {db}.sla_sealed), groupArray((dimension, key)) "
            "FROM {db}.sla_unsealed FINAL WHERE NOT sealed AND dimension IN ('total', %(by)s)", {"by": by})
        if now < dt.datetime.combine(through, dt.time(), dt.timezone.utc):  # an instant before it
            through = dt.date(1970, 1, 1)  # (the sealed rows count its deadlines as passed)
        unsealed = [tuple(v) for v in unsealed]
        sql = (ROLLUP_SQL.replace("{unsealed}", UNSEALED_SQL if unsealed else "")
               .replace("{quantiles}", BOARD_QUANTILES[quantiles]))
        return self.query(sql, parameters | {"through": through, "unsealed": unsealed})

    def queue(self, limit: int = 500, offset: int = 0, *, reason: str | None = None, top_class: str | None = None,
              district: str | None = None) -> tuple[list[dict], int]:
        """Incidents waiting for an operator, oldest first, and how many wait in all (with the filters):
        the latest review of each incident that no dispatch at that routing or a later one has
        answered and no operator closed, with what the operator needs to decide. `reason` matches
        a part of the reason."""
        filters, parameters = [], {"limit": limit, "offset": offset}
        if reason:
            filters.append("AND positionUTF8(r.reason, %(reason)s) > 0")
            parameters["reason"] = reason
        if top_class:
            filters.append("AND r.top_class = %(top_class)s")
            parameters["top_class"] = top_class
        if district:
            filters.append("AND i.district = %(district)s")
            parameters["district"] = district
        rows = self.query(QUEUE_SQL.replace("{filters}", " ".join(filters)), parameters)
        total = rows[0][-1] if rows else 0
        return [dict(zip(QUEUE_COLUMNS, (_jsonable(v) for v in r[:-1]), strict=True)) for r in rows], total

    def department_tasks(self, unit: str, status: str | None = "open", limit: int = 100, offset: int = 0,
                         task_id: str | None = None) -> list[dict]:
        """A unit's tasks as they last stood, most urgent first, each with the report (title, text with
        PII masked, address, place) and the duty item (title, legal basis) it was dispatched under."""
        where, parameters = _task_filter(unit=unit, status=status, task_id=task_id)
        tasks = [dict(zip(TASK_COLUMNS, (_jsonable(v) for v in row), strict=True)) for row in self.query(
            f"SELECT {', '.join(TASK_COLUMNS)} FROM {{db}}.tasks FINAL {where} "
            "ORDER BY ifNull(finish_by, dispatched_at), task_id LIMIT %(limit)s OFFSET %(offset)s",
            parameters | {"limit": limit, "offset": offset})]
        if not tasks:
            return []
        reports = {r[0]: r[1:] for r in self.query(
            "SELECT incident_id, source, title, text, address, lat, lon, photo_urls FROM {db}.incidents FINAL "
            "WHERE incident_id IN %(ids)s", {"ids": list({t["incident_id"] for t in tasks})})}
        items = {r[0]: r[1:] for r in self.query(
            "SELECT dispatch_id, item_title, legal_basis FROM {db}.dispatches FINAL WHERE dispatch_id IN %(ids)s",
            {"ids": [t["task_id"] for t in tasks]})}
        for task in tasks:
            source, title, text, address, lat, lon, photos = reports.get(task["incident_id"],
                                                                         ("", "", "", None, None, None, []))
            item_title, basis = items.get(task["task_id"], ("", ""))
            task |= {"source": source, "title": title, "text": text, "address": address,
                     "location": {"lat": lat, "lon": lon} if lat is not None else None,
                     "photo_urls": photos, "item_title": item_title, "legal_basis": basis}
        return tasks

    def task_status(self, task_id: str) -> tuple[str, str, str, int] | None:
        """(unit, incident id, status, version) of a task as ClickHouse last holds it."""
        rows = self.query("SELECT unit, incident_id, status, version FROM {db}.tasks FINAL WHERE task_id = %(id)s",
                          {"id": task_id})
        return rows[0] if rows else None

    def content_hash(self, incident_id: str) -> tuple[str, dt.datetime] | None:
        """(content hash, received) of a stored incident, or None: not (yet) stored."""
        rows = self.query("SELECT content_hash, reported_at FROM {db}.incidents FINAL WHERE incident_id = %(id)s",
                          {"id": incident_id})
        return (rows[0][0], dt.datetime.fromisoformat(_jsonable(rows[0][1]))) if rows else None

    def submitted_by(self, task_id: str) -> str | None:
        """The id of the API key that sent the report a task came from (None: not sent through the api)."""
        rows = self.query("SELECT submitted_by FROM {db}.incidents FINAL WHERE incident_id IN (SELECT incident_id "
                          "FROM {db}.tasks FINAL WHERE task_id = %(id)s)", {"id": task_id})
        return rows[0][0] if rows else None

    def waiting(self, incident_id: str) -> bool:
        """Whether the incident is in the operator queue (as ClickHouse last holds it)."""
        return bool(self.query(QUEUE_SQL.replace("{filters}", "AND r.incident_id = %(id)s"),
                               {"id": incident_id, "limit": 1, "offset": 0}))

    def hotline_tickets(self, ticket_nos: Sequence[str] | None = None, start: dt.datetime | None = None,
                        end: dt.datetime | None = None, limit: int = 1000) -> list[dict]:
        """Hotline tickets, newest first, each with what a reporter may know: the primary task of the
        latest routing (unit, status, item, deadlines, score), the result text of its completion, and
        the operator's note when closed without a dispatch. No caller, no phone."""
        where, parameters = ["source = 'hotline'"], {"limit": limit}
        if ticket_nos is not None:
            where.append("source_id IN %(nos)s")
            parameters["nos"] = list(ticket_nos)
        if start is not None:
            where.append("reported_at >= %(start)s")
            parameters["start"] = start
        if end is not None:
            where.append("reported_at <= %(end)s")
            parameters["end"] = end
        columns = ("ticket_no", "incident_id", "reported_at", "title", "text", "address", "lat", "lon", "category_hint",
                   "photo_urls")
        tickets = [dict(zip(columns, (_jsonable(v) for v in row), strict=True)) for row in self.query(
            f"SELECT source_id, {', '.join(columns[1:])} FROM {{db}}.incidents FINAL WHERE {' AND '.join(where)} "
            "ORDER BY reported_at DESC, source_id LIMIT %(limit)s", parameters)]
        if not tickets:
            return []
        incident_ids = [t["incident_id"] for t in tickets]
        task_columns = ("task_id", "unit", "status", "item_no", "dispatched_at", "accepted_at", "completed_at",
                        "closed_at", "evaluated_at", "score", "finish_by", "last_event_at")
        latest: dict[str, dict] = {}
        for row in self.query(f"SELECT incident_id, {', '.join(task_columns)} FROM {{db}}.tasks FINAL "
                              "WHERE incident_id IN %(ids)s AND role = 'primary' ORDER BY attempt",
                              {"ids": incident_ids}):
            latest[row[0]] = dict(zip(task_columns, (_jsonable(v) for v in row[1:]), strict=True))
        task_ids = [t["task_id"] for t in latest.values()] or [""]  # `IN ()` is no SQL: match nothing
        titles = dict(self.query("SELECT dispatch_id, item_title FROM {db}.dispatches FINAL "
                                 "WHERE dispatch_id IN %(ids)s", {"ids": task_ids}))
        results = {task: (text, at) for task, text, at in self.query(
            "SELECT task_id, result, at FROM {db}.task_events FINAL WHERE task_id IN %(ids)s AND kind = 'completed' "
            "ORDER BY at", {"ids": task_ids})}
        closed = {incident: {"reason": reason, "note": note, "at": _jsonable(at)} for incident, reason, note, at in
                  self.query("SELECT incident_id, close_reason, note, decided_at FROM {db}.operator_decisions FINAL "
                             "WHERE incident_id IN %(ids)s AND action = 'close'", {"ids": incident_ids})}
        for ticket in tickets:
            task = latest.get(ticket["incident_id"])
            result = results.get(task["task_id"]) if task else None
            ticket |= {"task": task, "item_title": titles.get(task["task_id"]) if task else None,
                       "result": {"text": result[0], "at": _jsonable(result[1])} if result else None,
                       "closed_without_dispatch": closed.get(ticket["incident_id"])}
        return tickets

    def tasks(self, unit: str | None = None, status: str | None = None, limit: int = 1000) -> list[dict]:
        """Tasks as they last stood, as a department clerk lists them (status 'open': not yet completed)."""
        where, parameters = _task_filter(unit=unit, status=status)
        result = self._query_result(f"SELECT * EXCEPT (stored_at) FROM {{db}}.tasks FINAL {where} "
                                    "ORDER BY finish_by, task_id LIMIT %(limit)s", parameters | {"limit": limit})
        return [dict(zip(result.column_names, (_jsonable(v) for v in row), strict=True)) for row in result.result_rows]

    def dispatch_accuracy(self, by: str = "unit", since: dt.datetime | None = None) -> dict:
        """Dispatch accuracy as the units report it: per unit (or item), the primary tasks of first
        routings, how many came back (退单: 职能不符 wrong function, 属地不符 wrong area, other) and how many
        incidents were routed again (a return re-routed, or an operator's dispatch after it). Replayed
        history is left out (it was never dispatched by this system)."""
        if by not in ("unit", "item_no"):
            raise ValueError(f"by must be unit or item_no, not {by!r}")
        when = "AND dispatched_at >= %(since)s" if since else ""
        figures = ("dispatched", "returned", "wrong_function", "wrong_area", "rerouted")
        rows = self.query(
            f"SELECT {by}, count(), countIf(returned_at IS NOT NULL), countIf(return_reason = '职能不符'), "
            "countIf(return_reason = '属地不符'), countIf(incident_id IN (SELECT incident_id FROM {db}.tasks FINAL "
            "WHERE role = 'primary' AND attempt > 0)) "
            f"FROM {{db}}.tasks FINAL WHERE role = 'primary' AND attempt = 0 AND NOT replayed {when} "
            f"GROUP BY {by} ORDER BY count() DESC, {by}", {"since": since} if since else None)

        def with_rates(key: str, counts: Sequence[int]) -> dict:
            row = {"key": key, **dict(zip(figures, counts, strict=True))}
            return row | {"return_rate": rate(row["returned"], row["dispatched"]),
                          "wrong_function_rate": rate(row["wrong_function"], row["dispatched"]),
                          "reroute_rate": rate(row["rerouted"], row["dispatched"])}

        total = [sum(r[n] for r in rows) for n in range(1, len(figures) + 1)]
        return {"by": by, "total": with_rates("total", total), "rows": [with_rates(r[0], r[1:]) for r in rows]}

    def overdue(self, now: dt.datetime, limit: int = 50, *, prewarned: bool = False) -> list[dict]:
        """The overdue tasks (the one definition: open, past the finish deadline), longest overdue first,
        then with `prewarned` those past their pre-warning and not yet due, nearest deadline first: who
        has it, under which item, where — no report text, no caller. `overdue` tells the two apart."""
        where = (f"status IN {FINISH_RUNNING} AND finish_warn_at <= {NOW_SQL}" if prewarned
                 else OVERDUE_SQL)
        return self._attention(where, {"now": now.timestamp(), "limit": limit})

    def trend(self, bucket: str, since: dt.datetime, until: dt.datetime, tz: str) -> list[dict]:
        """Per hour or day (in the city's zone `tz`) from `since` to `until`: reports received, tasks
        dispatched, tasks closed and closed on time — the screen's trend lines. Counted in whole hours
        (activity_hours): the first bucket counts from the start of the hour `since` falls in, and a
        day is the city's day for zones a whole number of hours from UTC."""
        if bucket not in ("hour", "day"):
            raise ValueError("bucket must be hour or day")
        counts: dict = {}
        for at, figure, n in self.query(
                f"SELECT toStartOf{bucket.capitalize()}(hour, %(tz)s) AS at, figure, sum(n) FROM {{db}}.activity_hours FINAL "
                "WHERE figure IN %(figures)s AND hour >= toStartOfHour(toDateTime64(%(since)s, 3)) "
                "AND hour < toDateTime64(%(until)s, 3) GROUP BY at, figure ORDER BY at",
                {"since": since.timestamp(), "until": until.timestamp(), "tz": tz, "figures": TREND_FIGURES}):
            instant = (at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)
            counts.setdefault(instant.isoformat(), {})[figure] = n
        return [{"at": at, **{n: row.get(n, 0) for n in TREND_FIGURES}} for at, row in sorted(counts.items())]

    def grid_tasks(self, grid_code: str, now: dt.datetime, limit: int = 100) -> list[dict]:
        """A grid's open tasks, the longest overdue first (what the map's click shows; no text, no caller)."""
        return self._attention(f"grid_code = %(grid)s AND {OPEN_SQL}",
                               {"grid": grid_code, "now": now.timestamp(), "limit": limit})

    def _attention(self, where: str, parameters: dict) -> list[dict]:
        """Tasks matching `where` as the screen lists them, the earliest deadline first, each saying
        whether it is overdue at `now` (the one definition)."""
        rows = self.query(f"SELECT {', '.join(ATTENTION_COLUMNS)}, {OVERDUE_SQL} AS overdue FROM {{db}}.open_tasks FINAL "
                          f"WHERE {where} ORDER BY finish_by, task_id LIMIT %(limit)s", parameters)
        return [dict(zip((*ATTENTION_COLUMNS, "overdue"), (*map(_jsonable, row[:-1]), bool(row[-1])), strict=True))
                for row in rows]

    def timeline(self, task_id: str) -> list[dict]:
        """A task's events in order: dispatch, acceptance, returns, extensions, alerts, completion,
        verification, evaluation — who acted and the event's facts, never a note or a result text."""
        rows = self.query(
            f"SELECT {TIMELINE_SELECT} FROM {{db}}.task_events FINAL "
            "WHERE task_id = %(task_id)s ORDER BY at, event_id", {"task_id": task_id})
        return [dict(zip(TIMELINE_COLUMNS, (_jsonable(v) for v in row), strict=True)) for row in rows]

    def _query_result(self, sql: str, parameters: dict | None = None):
        with self._lock:
            return self._client.query(sql.replace("{db}", self.database), parameters=parameters)

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

