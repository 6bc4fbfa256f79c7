"""`cityops bench store`: the screen's queries over a synthetic history of N task events in a fresh
chDB store, p50/p95 per query. The history is generated inside ClickHouse (INSERT … SELECT FROM
numbers()), with the sample city's units, items, streets and grids: tasks dispatched over the last
90 days, most of them closed, some open and overdue, each with its events (dispatched, accepted,
completed, verified, closed, evaluated, and some alerts) — about five events per task — and the
report each task came from, its dispatch, and one report in ten queued for an operator first.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from infra.store import Store
from pipeline.dutylists import DutyBook

EVENTS_PER_TASK = 5  # dispatched, accepted, completed, verified, closed (evaluated and alerts for some)


def _array(values) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: list[str], salt: int) -> str:
    return f"{_array(values)}[1 + cityHash64(number, {salt}) % {len(values)}]"


def generate(store: Store, book: DutyBook, events: int, now: dt.datetime, *, chunk: int = 500_000,
             log: Callable[[str], None] = print) -> int:
    """Insert about `events` task events (and their tasks) ending at `now`; returns the tasks made."""
    tasks = max(1, events // EVENTS_PER_TASK)
    items = list(book.dutylist.items)
    units = sorted({i.primary_unit for i in items})
    streets = sorted(u.code for u in book.units.values() if u.kind == "street")
    grids = sorted(g.code for g in book.registry.grids) or [""]
    end = now.timestamp()
    for first in range(0, tasks, chunk):
        n = min(chunk, tasks - first)
        # r(k): a uniform number in [0, 1) per task and purpose k
        r = "(cityHash64(number, {k}) % 1000000) / 1000000.0"
        status = (f"multiIf({r.format(k=10)} < 0.03, 'returned', {r.format(k=10)} < 0.08, 'dispatched', "
                  f"{r.format(k=10)} < 0.16, 'accepted', {r.format(k=10)} < 0.18, 'parked', "
                  f"{r.format(k=10)} < 0.60, 'closed', 'evaluated')")
        dispatched = f"toDateTime64({end} - 90 * 86400 * {r.format(k=11)}, 3, 'UTC')"
        store.query(f"""
INSERT INTO {{db}}.tasks (task_id, incident_id, unit, role, item_no, top_class, dutylist_version, attempt, source,
    district, street, community, grid_code, status, accept_within_hours, finish_within_days, dispatched_at,
    accepted_at, completed_at, verified_at, closed_at, evaluated_at, returned_at, return_reason, rework,
    extensions_requested, extension_days, supervised, escalated_at, score, reports, accept_by, accept_warn_at,
    finish_by, finish_warn_at, escalate_at, accept_working_hours, finish_working_hours, last_event_at, version,
    paused_seconds)
SELECT concat('bench-', toString(number)), concat('bench-i-', toString(number)), {_pick(units, 1)},
    if({r.format(k=2)} < 0.8, 'primary', 'cooperating'), {_pick([i.number for i in items], 3)},
    {_pick(sorted({i.top_class for i in items}), 4)}, 'bench', 0, {_pick(['hotline', 'hotline', 'grid', 'sensor', 'whistle'], 5)},
    NULL, {_pick(streets, 6)}, NULL, {_pick(grids, 7)}, status, 2, 5, dispatched,
    if(status NOT IN ('dispatched', 'returned'), dispatched + toIntervalSecond(toUInt32(7200 * {r.format(k=12)} * 2)), NULL),
    if(status IN ('closed', 'evaluated'), dispatched + toIntervalSecond(toUInt32(86400 * 9 * {r.format(k=13)})), NULL),
    if(status IN ('closed', 'evaluated'), dispatched + toIntervalSecond(toUInt32(86400 * 9 * {r.format(k=13)} + 3600)), NULL),
    if(status IN ('closed', 'evaluated'), dispatched + toIntervalSecond(toUInt32(86400 * 9 * {r.format(k=13)} + 7200)), NULL),
    if(status = 'evaluated', dispatched + toIntervalSecond(toUInt32(86400 * 10)), NULL),
    if(status = 'returned', dispatched + toIntervalSecond(3600), NULL), if(status = 'returned', '职能不符', NULL),
    toUInt16({r.format(k=14)} < 0.05), 0, 0, toUInt16({r.format(k=15)} < 0.04), NULL,
    if(status = 'evaluated', toUInt8(1 + cityHash64(number, 16) % 3), NULL), 1,
    dispatched + toIntervalSecond(7200), dispatched + toIntervalSecond(5760),
    dispatched + toIntervalSecond(7 * 86400), dispatched + toIntervalSecond(5 * 86400),
    dispatched + toIntervalSecond(9 * 86400),
    if(status NOT IN ('dispatched', 'returned'), 4 * {r.format(k=12)}, NULL),
    if(status IN ('closed', 'evaluated'), 72 * {r.format(k=13)}, NULL), dispatched, 6, 0
FROM (SELECT number, {status} AS status, {dispatched} AS dispatched FROM numbers({first}, {n}))""")
        log(f"  tasks {first + n:,} of {tasks:,}")
    # The events: each task's steps up to its status, at the task's own times.
    store.query("""
INSERT INTO {db}.task_events (event_id, task_id, incident_id, unit, kind, at, by, note)
SELECT concat(task_id, ':', step.1), task_id, incident_id, unit, step.1, assumeNotNull(step.2), 'bench', ''
FROM {db}.tasks ARRAY JOIN
    arrayFilter(x -> x.2 IS NOT NULL, [('dispatched', dispatched_at), ('accepted', accepted_at),
        ('completed', completed_at), ('verified', verified_at), ('closed', closed_at), ('evaluated', evaluated_at),
        ('returned', returned_at), ('prewarning', if(status = 'dispatched', accept_warn_at, NULL))]) AS step
WHERE dutylist_version = 'bench'""")
    # The reports: one per task, received a minute before its dispatch, no text (what the screen reads
    # of them are counts).
    store.query("""
INSERT INTO {db}.incidents (incident_id, source, source_id, reported_at, normalized_at, title, text, street, grid_code)
SELECT incident_id, source, task_id, dispatched_at - toIntervalSecond(60), dispatched_at - toIntervalSecond(59), '', '',
    street, grid_code
FROM {db}.tasks WHERE dutylist_version = 'bench'""")
    # Each task's dispatch, and one report in ten queued for an operator before (the tables /stats/ counts).
    store.query("""
INSERT INTO {db}.dispatches (dispatch_id, incident_id, unit, role, item_no, item_title, top_class, dutylist_version,
    legal_basis, confidence, reason, dispatched_at, accept_within_hours, finish_within_days, attempt)
SELECT task_id, incident_id, unit, role, item_no, '', top_class, dutylist_version, '', 1, 'bench', dispatched_at,
    accept_within_hours, finish_within_days, attempt
FROM {db}.tasks WHERE dutylist_version = 'bench'""")
    store.query("""
INSERT INTO {db}.manual_reviews (incident_id, reason, candidates, queued_at, attempt)
SELECT incident_id, 'low confidence', [], reported_at, 0 FROM {db}.incidents WHERE cityHash64(incident_id) % 10 = 0""")
    log("  the SLA rollup and the trend counts…")
    store.refresh_rollup()
    store.refresh_activity()
    store.clean_open_tasks()  # as the sink does every OPEN_TASKS_CLEANUP_SECONDS
    return tasks


def wait_for_merges(store: Store, timeout: float = 300.0) -> float:
    """Wait until no background merge of the store's database runs, at most `timeout` seconds;
    returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout and store.query(
            "SELECT count() FROM system.merges WHERE database = '{db}'")[0][0]:
        time.sleep(1)
    return time.monotonic() - started


def time_queries(queries: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """p50/p95/max in ms per query, after one warm-up run each."""
    figures = {}
    for name, run in queries.items():
        run()
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            run()
            samples.append(1000 * (time.perf_counter() - started))
        samples.sort()
        figures[name] = {"p50_ms": round(statistics.median(samples), 1),
                         # nearest rank: the 19th of 20 (int(0.95 · n) was the slowest of 20)
                         "p95_ms": round(samples[math.ceil(0.95 * len(samples)) - 1], 1),
                         "max_ms": round(samples[-1], 1)}
    return figures


def run_store_bench(events: int, repeats: int, work_dir: Path, book: DutyBook, log=print) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    with Store(f"chdb://{work_dir / 'clickhouse'}") as store:
        store.migrate()
        started = time.perf_counter()
        tasks = generate(store, book, events, now, log=log)
        generated = time.perf_counter() - started
        # Time at rest, as a live store mostly is: after ClickHouse's background merges of the bulk load.
        settled = wait_for_merges(store)
        log(f"  background merges settled in {settled:.0f} s")
        stored_events = store.count("task_events")
        log(f"{tasks:,} tasks, {stored_events:,} task events in {generated:.0f} s; timing queries…")
        day = dt.timedelta(days=1)
        grid = store.query("SELECT any(grid_code) FROM {db}.tasks")[0][0]
        queries = {
            "sla_by_unit": lambda: store.sla("unit", now),
            "sla_by_street": lambda: store.sla("street", now),
            "sla_by_item": lambda: store.sla("item_no", now),
            "sla_by_grid": lambda: store.sla("grid_code", now),
            "map_load_by_grid": lambda: store.sla("grid_code", now, quantiles=False),
            # (the scores' schemes that weigh one intake source: Pudong's, Qiqihar's)
            "sla_by_unit_whistle": lambda: store.sla("unit", now, source="whistle"),
            "sla_by_source_7d": lambda: store.sla("source", now, since=now - 7 * day),
            "overdue_list": lambda: store.overdue(now, limit=200),
            "trends_hourly_48h": lambda: store.trend("hour", now - 2 * day, now, "Asia/Shanghai"),
            "trends_daily_30d": lambda: store.trend("day", now - 30 * day, now, "Asia/Shanghai"),
            "grid_tasks": lambda: store.grid_tasks(grid, now),
            "stats": store.stats,
            "timeline": lambda: store.timeline("bench-12345"),
        }
        return {"events": stored_events, "tasks": tasks, "generate_seconds": round(generated, 1),
                "merges_seconds": round(settled, 1), "repeats": repeats,
                "queries": time_queries(queries, repeats)}
