"""The store's SQL, each figure and filter written once: the SLA board's counts over task rows,
the rollup and its sealed rows, the activity copies, the operator queue and the task listings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pipeline.lifecycle import ALL, OPEN
from pipeline.sla import ACCEPT_RUNNING, FINISH_RUNNING

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
OVERDUE_SQL = f"{SLA_BY_INSTANT['overdue_open'][2]} AND finish_by < {NOW_SQL}"


def _in(values) -> str:
    """A SQL list of string literals (a Python tuple of one prints a trailing comma)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


# Where a task stands against its limits at an instant, as a department's workbench colours it: past
# the finish limit (the one overdue definition above), past the accept limit, pre-warned (past the
# warning instant of a running clock), paused (parked, or waiting for an extension), running, ended.
DEADLINE_STATES = ("overdue", "accept_overdue", "prewarned", "paused", "running", "ended")
DEADLINE_SQL = f"""multiIf(
    {OVERDUE_SQL}, 'overdue',
    status IN {_in(ACCEPT_RUNNING)} AND accept_by < {NOW_SQL}, 'accept_overdue',
    status IN {_in(FINISH_RUNNING)} AND (ifNull(finish_warn_at < {NOW_SQL}, 0)
        OR (status IN {_in(ACCEPT_RUNNING)} AND ifNull(accept_warn_at < {NOW_SQL}, 0))), 'prewarned',
    status IN ('parked', 'extension_pending'), 'paused',
    {OPEN_SQL}, 'running', 'ended')"""


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
                "accept_warn_at", "finish_by", "finish_warn_at", "accepted_at", "completed_at", "verified_at", "closed_at", "returned_at", "return_reason",
                "parked_reason", "review_on", "extensions_requested", "extension_days", "supervised", "score",
                "last_event_at", "version")
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


def activity_refresh_sql(tables: Iterable[str]) -> str:
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


def within_store_range(at: dt.datetime) -> dt.datetime:
    """`at` as ClickHouse can compare it: an instant without an offset is taken as UTC, and one outside
    DateTime64's 1900–2299 is moved to its edge (it matches nothing anyway)."""
    at = at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
    low, high = dt.datetime(1900, 1, 2, tzinfo=dt.timezone.utc), dt.datetime(2299, 12, 30, tzinfo=dt.timezone.utc)
    return min(max(at, low), high)


def task_filter(*, unit: str | None = None, status: str | None = None, task_id: str | None = None,
                item_no: str | None = None) -> tuple[str, dict]:
    """The WHERE clause and its parameters for a listing of tasks: a unit, a status or 'open', one task, an item."""
    where, parameters = [], {}
    for column, value in (("unit", unit), ("task_id", task_id), ("status", status if status != "open" else None),
                          ("item_no", item_no)):
        if value:
            where.append(f"{column} = %({column})s")
            parameters[column] = value
    if status == "open":
        where.append(OPEN_SQL)
    return (f"WHERE {' AND '.join(where)}" if where else ""), parameters


# What the operations centre teaches the next model (docs/classification.md, "Learning from rulings"):
# an operator's dispatch under an item (the item is right for the text), a close as answered / invalid
# / duplicate (not for dispatch), a department's return as 职能不符 (its unit is wrong for the text; the
# item it was routed to next, once it has been, is right). Each with the text the model read (masked at
# intake) and its hash, the model whose decision came before (for a ruling on a return sent back to the
# queue, the model that made the returned dispatch), who decided and when.
RULINGS_SQL = """
SELECT r.kind, r.ruling_id, r.incident_id, i.title, i.text, lower(hex(SHA256(concat(i.title, '\\n', i.text)))),
       r.item_no, r.units, r.wrong_unit, r.model_version, r.decided_by, r.decided_at
FROM (
    SELECT if(d.action = 'dispatch', 'dispatch', 'not_for_dispatch') AS kind, d.decision_id AS ruling_id,
           d.incident_id AS incident_id, toString(d.item_no) AS item_no, d.units AS units, '' AS wrong_unit,
           coalesce(m.model_version, x.model_version) AS model_version, toString(d.operator) AS decided_by,
           d.decided_at AS decided_at
    FROM {db}.operator_decisions AS d FINAL
    LEFT JOIN (SELECT incident_id, argMax(model_version, queued_at) AS model_version
               FROM {db}.manual_reviews FINAL GROUP BY incident_id) AS m ON m.incident_id = d.incident_id
    LEFT JOIN (SELECT incident_id, argMax(model_version, dispatched_at) AS model_version
               FROM {db}.dispatches FINAL GROUP BY incident_id) AS x ON x.incident_id = d.incident_id
    UNION ALL
    SELECT 'return', t.task_id, t.incident_id, toString(n.item_no), CAST(if(n.unit = '', [], [toString(n.unit)])
           AS Array(String)), toString(t.unit), p.model_version, toString(t.unit), assumeNotNull(t.returned_at)
    FROM {db}.tasks AS t FINAL
    LEFT JOIN (SELECT dispatch_id, model_version FROM {db}.dispatches FINAL) AS p ON p.dispatch_id = t.task_id
    LEFT JOIN (SELECT incident_id, attempt, item_no, unit FROM {db}.tasks FINAL WHERE role = 'primary') AS n
        ON n.incident_id = t.incident_id AND n.attempt = t.attempt + 1
    WHERE t.role = 'primary' AND t.return_reason = '职能不符' AND NOT t.replayed
) AS r
INNER JOIN (SELECT incident_id, title, text FROM {db}.incidents FINAL) AS i ON i.incident_id = r.incident_id
WHERE r.decided_at >= toDateTime64(%(since)s, 3) AND r.decided_at < toDateTime64(%(until)s, 3)
ORDER BY r.decided_at, r.ruling_id
LIMIT %(limit)s
"""
RULING_COLUMNS = ("kind", "ruling_id", "incident_id", "title", "text", "text_sha256", "item_no", "units", "wrong_unit",
                  "model_version", "decided_by", "decided_at")
