"""The ClickHouse store on real chDB: idempotent DDL, idempotent batches, no PII columns."""

import datetime as dt
import math

import pytest

from infra.store import Store
from infra.store.queries import DERIVED_TABLES
from infra.store.writes import _utc_day
from pipeline import ids
from schemas import DeadLetter, Dispatch, Incident

NOW = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)


def incidents(n: int, start: int = 0) -> list[Incident]:
    return [Incident(incident_id=ids.incident_id("hotline", f"t{i}"), source="hotline", source_id=f"t{i}",
                     reported_at=NOW, normalized_at=NOW, title="噪音", text=f"第{i}号工单", reporter_hash="ab" * 32)
            for i in range(start, start + n)]


def test_migrate_twice_changes_nothing(store: Store):
    assert store.migrate() == store.migrate()
    assert {"incidents", "dispatches", "task_events", "manual_reviews", "dead_letters"} <= {
        r[0] for r in store.query("SELECT name FROM system.tables WHERE database = '{db}'")}


def test_a_retried_batch_is_stored_once(store: Store):
    batch = incidents(1500)
    for _ in range(3):
        store.insert(batch)
    # Deduplicated at insert time by the token, not only at read time by FINAL.
    assert store.query("SELECT count() FROM {db}.incidents")[0][0] == 1500


def test_a_replay_in_different_batches_collapses_under_final(store: Store):
    store.insert(incidents(1000))
    store.insert(incidents(600, start=700))  # overlaps 700..999, as a redelivery after a crash would
    assert store.query("SELECT count() FROM {db}.incidents")[0][0] == 1600  # both batches stored
    assert store.count("incidents") == 1300  # FINAL: one row per incident


def test_a_batch_spanning_years_of_months_is_stored(store: Store):
    """History replayed in one batch spans as many month partitions as it covers: ClickHouse refuses
    more than 100 per insert by default, which stopped the sink for good on the replied messages."""
    months = [incident.model_copy(update={"reported_at": dt.datetime(2010, 1, 15, tzinfo=dt.timezone.utc)
                                          + dt.timedelta(days=31 * n)}) for n, incident in enumerate(incidents(150))]
    store.insert(months)
    assert store.count("incidents") == 150


def test_stats_count_dispatches_per_unit(store: Store):
    def dispatch(incident_id: str, unit: str, role: str) -> Dispatch:
        return Dispatch(dispatch_id=ids.dispatch_id(incident_id, unit, role), incident_id=incident_id, unit=unit,
                        role=role, item_no="1", item_title="违建", top_class="城乡建设", dutylist_version="v1",
                        legal_basis="法", confidence=0.9, reason="k", dispatched_at=NOW, accept_within_hours=2,
                        finish_within_days=5)

    store.insert([dispatch("a", "cgj", "primary"), dispatch("a", "zrzyj", "cooperating"), dispatch("b", "cgj", "primary")])
    stats = store.stats()
    assert stats["dispatched"] == 2
    assert stats["dispatched_per_unit"] == {"cgj": 2}
    assert stats["clickhouse_dispatches"] == 3


def test_dead_letters_keep_a_hash_of_the_payload_not_the_payload(store: Store):
    letter = DeadLetter(dead_letter_id="d1", topic="intake.hotline", partition=0, offset=7, stage="normalize",
                        reason="caller_phone: String should match pattern", payload='{"caller_phone": "13812345678"}',
                        failed_at=NOW)
    store.insert([letter])
    columns = {r[0] for r in store.query("SELECT name FROM system.columns WHERE database = '{db}' AND table = 'dead_letters'")}
    assert "payload" not in columns and "payload_sha256" in columns
    assert "13812345678" not in str(store.query("SELECT * FROM {db}.dead_letters"))


def test_the_store_reopens_its_directory_after_close(chdb_url: str):
    first = Store(chdb_url)
    first.migrate()
    first.insert(incidents(10))
    first.close()
    second = Store(chdb_url)
    assert second.count("incidents") == 10
    second.close()


def test_every_message_type_has_a_table_with_its_columns(store: Store):
    """A field added to a schema without a migration would stall the sink: catch it here."""
    from infra.store.rows import TABLES
    from pipeline.lifecycle import open_task
    from pipeline.sla import SlaClock
    from pipeline.workcalendar import WorkCalendar
    from schemas import Alert, DutyListVersion, ManualReview, OperatorDecision, TaskEvent, WebhookAttempt

    dispatch = Dispatch(dispatch_id="d", incident_id="i", unit="cgj", role="primary", item_no="1", item_title="t",
                        top_class="城乡建设", dutylist_version="v", legal_basis="b", confidence=1, reason="r",
                        dispatched_at=NOW, accept_within_hours=1, finish_within_days=1, candidates=["2"])
    dispatched = TaskEvent(event_id="e", task_id="d", incident_id="i", unit="cgj", kind="dispatched", at=NOW,
                           dispatch=dispatch, incident=incidents(1)[0])
    examples = [
        incidents(1)[0],
        dispatch,
        dispatched,
        open_task(dispatched, SlaClock(WorkCalendar())),
        ManualReview(incident_id="i", reason="r", queued_at=NOW, incident=incidents(1)[0], attempt=1),
        WebhookAttempt(attempt_id="w", alert_id="a", to_unit="cgj", url="http://x/", attempt=1, at=NOW, status=503,
                       error="", delivered=False, seconds=0.1),
        DeadLetter(dead_letter_id="x", topic="t", partition=0, offset=0, stage="s", reason="r", payload="p", failed_at=NOW),
        DutyListVersion(version="v", published_at=NOW, yaml="version: v"),
        OperatorDecision(decision_id="o", incident_id="i", item_no="1", operator="op", decided_at=NOW),
        Alert(alert_id="a", kind="hotspot", item_no="1", place="g", reports=5, first_at=NOW, last_at=NOW, raised_at=NOW),
        Alert(alert_id="b", kind="overdue", item_no="1", to_unit="cgj", raised_at=NOW, task_id="d", incident_id="i",
              unit="cgj", limit="accept", due_at=NOW),
    ]
    assert {type(e) for e in examples} == set(TABLES)
    for example in examples:
        table, to_row = TABLES[type(example)]
        columns = {r[0] for r in store.query(
            "SELECT name FROM system.columns WHERE database = '{db}' AND table = %(t)s", {"t": table})}
        assert set(to_row(example)) <= columns, f"{table} lacks {set(to_row(example)) - columns}"
        assert store.insert([example]) == 1


def test_a_changed_message_with_the_same_id_replaces_the_old_one(store: Store):
    from schemas import ManualReview

    first = ManualReview(incident_id="i1", reason="no duty-list keyword in the text", queued_at=NOW)
    refused = ManualReview(incident_id="i1", reason="摊派 refused: …", tanpai_refused=True, queued_at=NOW)
    store.insert([first])
    store.insert([refused])  # same id, new content: not a retry, so not dropped
    assert store.query("SELECT reason, tanpai_refused FROM {db}.manual_reviews FINAL") == [("摊派 refused: …", True)]


def test_sla_figures_from_task_updates(store: Store):
    """The monthly figures from the tasks table: one closed on time and satisfied, one closed late after
    rework and unsatisfied, one returned, one open past its deadline."""
    import datetime as dt

    from pipeline.lifecycle import apply, open_task
    from pipeline.sla import SlaClock
    from pipeline.workcalendar import WorkCalendar
    from schemas import TaskEvent, TaskUpdate

    clock = SlaClock(WorkCalendar())
    t0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))

    def life(task_id: str, unit: str, *steps: tuple[str, float, dict]) -> list[TaskUpdate]:
        d = Dispatch(dispatch_id=task_id, incident_id=f"i{task_id}", unit=unit, role="primary", item_no="CJ-029",
                     item_title="t", top_class="城乡建设", dutylist_version="v", legal_basis="b", confidence=1,
                     reason="r", dispatched_at=t0, accept_within_hours=2, finish_within_days=1)
        event = TaskEvent(event_id=f"{task_id}-0", task_id=task_id, incident_id=d.incident_id, unit=unit,
                          kind="dispatched", at=t0, dispatch=d)
        task = open_task(event, clock)
        updates = [TaskUpdate(event=event, task=task)]
        for n, (kind, hours, extra) in enumerate(steps, start=1):
            event = TaskEvent(event_id=f"{task_id}-{n}", task_id=task_id, incident_id=d.incident_id, unit=unit,
                              kind=kind, at=t0 + dt.timedelta(hours=hours), **extra)
            task = apply(task, event, clock)
            updates.append(TaskUpdate(event=event, task=task))
        return updates

    closing = [("verified", 6, {}), ("closed", 6.5, {})]
    updates = [
        *life("a", "cgj", ("accepted", 1, {}), ("completed", 5, {}), *closing, ("evaluated", 7, {"score": 3})),
        *life("b", "cgj", ("accepted", 3, {}), ("completed", 5, {}), ("rework", 5.5, {}), ("completed", 48, {}),
              ("verified", 49, {}), ("closed", 50, {}), ("evaluated", 51, {"score": 1})),
        *life("c", "zjj", ("returned", 0.5, {"reason": "职能不符"})),
        *life("d", "zjj", ("accepted", 1, {}), ("supervised", 30, {})),
    ]
    store.insert(updates)
    store.insert(updates[:5])  # a redelivered batch changes nothing
    assert store.count("task_events") == len(updates)
    board = store.sla("unit", now=t0 + dt.timedelta(days=3))
    total, cgj = board["total"], next(r for r in board["rows"] if r["key"] == "cgj")
    assert (total["tasks"], total["returned"], total["closed"], total["overdue_open"], total["supervised"]) == (4, 1, 2, 1, 1)
    assert total["response_rate"] == round(2 / 3, 4)  # a: 1 h, b: 3 h > 2 h limit, d: 1 h; c returned
    # a closed on time, b closed late, d open past its deadline (late already): 1 of 3
    assert total["closure_rate"] == round(2 / 3, 4) and total["on_time_closure_rate"] == round(1 / 3, 4)
    assert (cgj["rework_rate"], cgj["resolution_rate"], cgj["satisfaction_rate"]) == (0.5, 0.5, 0.5)
    assert cgj["accept_hours_p50"] is not None and 1 <= cgj["accept_hours_p50"] <= 3
    # A window of dispatch times, and figures as of another instant: the same definitions.
    assert store.sla("unit", now=t0 + dt.timedelta(days=3), since=t0 + dt.timedelta(hours=1))["total"] is None
    early = store.sla("unit", now=t0 + dt.timedelta(hours=3), until=t0 + dt.timedelta(hours=1))["total"]
    assert early["tasks"] == 4 and early["overdue_open"] == 0  # d is not late yet three hours in
    with pytest.raises(ValueError, match="by must be one of"):
        store.sla("phone")


GRIDS = ["430102001001001", "430102001001002", None]


def mixed_task_lives(seed: int = 7) -> list:
    """240 tasks with mixed lives over several days, units, streets, grids and sources (accepted,
    reworked, returned, parked, supervised, closed, evaluated), as task updates in shuffled order."""
    import random

    from pipeline.lifecycle import apply, open_task
    from pipeline.sla import SlaClock
    from pipeline.workcalendar import WorkCalendar
    from schemas import TaskEvent, TaskUpdate

    clock, rng = SlaClock(WorkCalendar()), random.Random(seed)
    lives = [
        [("accepted", 1), ("completed", 5), ("verified", 6), ("closed", 7), ("evaluated", 8)],
        [("accepted", 3), ("completed", 30), ("rework", 31), ("completed", 60), ("verified", 61), ("closed", 62)],
        [("returned", 0.5)], [("accepted", 1)], [], [("accepted", 2), ("supervised", 20), ("supervised", 40)],
        [("accepted", 1), ("parked", 2)], [("accepted", 1), ("completed", 100), ("verified", 101), ("closed", 102)],
    ]
    updates = []
    for n in range(240):
        t0 = NOW - dt.timedelta(days=rng.randrange(6), hours=rng.random() * 20)
        unit, street, source = rng.choice(["cgj", "zjj", "sthjj"]), rng.choice(["a8-s1", "a8-s2", None]), \
            rng.choice(["hotline", "grid", "whistle"])
        incident = Incident(incident_id=f"i{n}", source=source, source_id=str(n), reported_at=t0, normalized_at=t0,
                            text="t", street=street, grid_code=rng.choice(GRIDS))
        d = Dispatch(dispatch_id=f"task{n}", incident_id=incident.incident_id, unit=unit, role="primary",
                     item_no=rng.choice(["CJ-029", "HB-001"]), item_title="t", top_class="城乡建设", dutylist_version="v",
                     legal_basis="b", confidence=1, reason="r", dispatched_at=t0, accept_within_hours=2,
                     finish_within_days=rng.choice([1, 5]))
        event = TaskEvent(event_id=f"{n}-0", task_id=d.dispatch_id, incident_id=d.incident_id, unit=unit,
                          kind="dispatched", at=t0, dispatch=d, incident=incident)
        task = open_task(event, clock)
        updates.append(TaskUpdate(event=event.model_copy(update={"incident": None}), task=task))
        for k, (kind, hours) in enumerate(rng.choice(lives), start=1):
            extra = {"reason": "职能不符"} if kind == "returned" else {"score": rng.choice([1, 2, 3])} \
                if kind == "evaluated" else {"reason": "r", "review_on": dt.date(2026, 12, 1)} if kind == "parked" else {}
            event = TaskEvent(event_id=f"{n}-{k}", task_id=d.dispatch_id, incident_id=d.incident_id, unit=unit,
                              kind=kind, at=t0 + dt.timedelta(hours=hours), **extra)
            task = apply(task, event, clock)
            updates.append(TaskUpdate(event=event, task=task))
    rng.shuffle(updates)  # versions arrive in any order; the highest wins
    return updates


def test_the_rollup_gives_the_figures_the_tasks_give_whatever_the_batches(store: Store):
    """The board reads the rollup for the whole history (its older days sealed into one row per
    value) and the tasks for a window: on a mix of lives over several days, units, streets and
    sources, both give the same counts and rates for every dimension and source, also after the same
    updates arrive again in other batches, whether the sealed values they changed are merged again
    yet or not, and as of an instant before the sealed days end."""
    store.recent_days, store.seal_every = 2, 3600  # the lives span 6 days: the first 3 or 4 are sealed
    updates = mixed_task_lives()
    for first in range(0, len(updates), 97):
        store.insert(updates[first:first + 97])
    for first in range(0, len(updates), 41):  # redelivered, batched otherwise
        store.insert(updates[first:first + 41])

    def without_quantiles(board: dict) -> list[dict]:
        return [{k: v for k, v in row.items() if "_p" not in k} for row in [board["total"], *board["rows"]]]

    through = store.sealed_through()
    assert through == max(_utc_day(u.task.dispatched_at) for u in updates) - dt.timedelta(days=2)
    as_of, epoch = NOW + dt.timedelta(hours=12), dt.datetime(1970, 1, 2, tzinfo=dt.timezone.utc)
    before_sealed = dt.datetime.combine(through, dt.time(), dt.timezone.utc) - dt.timedelta(hours=6)
    boards = [(by, source, as_of) for by in ("unit", "street", "item_no", "source", "role", "grid_code")
              for source in (None, "whistle")] + [("unit", None, before_sealed)]

    def assert_boards_equal() -> None:
        for by, source, instant in boards:
            rolled = store.sla(by, now=instant, source=source)
            exact = store.sla(by, now=instant, since=epoch, source=source)
            assert without_quantiles(rolled) == without_quantiles(exact), (by, source, instant)
            for got, want in zip([rolled["total"], *rolled["rows"]], [exact["total"], *exact["rows"]], strict=True):
                for figure in ("accept_hours_p50", "finish_hours_p90"):
                    assert (got[figure] is None) == (want[figure] is None)
                    if want[figure] is not None:
                        assert abs(got[figure] - want[figure]) <= 0.1 * max(1.0, want[figure]), (by, figure)

    unsealed = "SELECT count() FROM {db}.sla_unsealed FINAL WHERE NOT sealed"
    assert store.query(unsealed)[0][0] > 0  # sealed days changed, not merged again yet
    assert_boards_equal()
    store.seal_pending(now=True)  # what the sink does when idle: the changed sealed values merged again
    assert store.query(unsealed)[0][0] == 0 and store.count("sla_sealed") > 0
    assert_boards_equal()
    # The whole history's p50/p90 come from histograms: within 2.5% of the exact nearest-rank figure
    # (half of the lowest bucket's 0.01 h below it).
    board = store.sla("unit", now=as_of)["total"]
    for name, column in (("accept_hours", "accept_working_hours"), ("finish_hours", "finish_working_hours")):
        values = sorted(v for (v,) in store.query(f"SELECT {column} FROM {{db}}.task_days FINAL WHERE {column} IS NOT NULL"))
        assert len(values) > 20, name
        for q in (50, 90):
            exact = values[math.ceil(q / 100 * len(values)) - 1]
            assert abs(board[f"{name}_p{q}"] - exact) <= 0.025 * exact + 0.005 + 0.005, (name, q, exact)  # (+ rounding)
    # The map's load: the same counts, no quantiles.
    full, counts = store.sla("grid_code", now=as_of), store.sla("grid_code", now=as_of, quantiles=False)
    assert without_quantiles(counts) == without_quantiles(full)
    assert {row["finish_hours_p50"] for row in [counts["total"], *counts["rows"]]} == {None}
    total = store.sla("unit", now=as_of)["total"]
    assert total["tasks"] == 240 and total["overdue_open"] > 0 and total["supervised"] > 0
    # The whole history is read from the rollup and its sealed rows alone; both are rebuilt from the tasks.
    store.query("TRUNCATE TABLE {db}.sla_rollup")
    store.query("TRUNCATE TABLE {db}.sla_sealed")
    assert store.sla("unit", now=as_of)["total"] is None
    assert store.refresh_rollup() == len({u.task.dispatched_at.astimezone(dt.timezone.utc).date() for u in updates})
    assert store.sla("unit", now=as_of)["total"] == total
    # A store from an earlier version (here: with its TDigest columns still there) has both tables
    # made again and recomputed on migrate.
    for table in DERIVED_TABLES:
        store.query(f"ALTER TABLE {{db}}.{table} ADD COLUMN finish_hours AggregateFunction(quantilesTDigest(0.5, 0.9), Float64)")
    store.query("TRUNCATE TABLE {db}.sla_rollup")
    store.migrate()
    assert {table: store._columns(table) for table in DERIVED_TABLES} == {t: c for t, (_, c) in DERIVED_TABLES.items()}
    assert store.sla("unit", now=as_of)["total"] == total


def test_the_open_tasks_list_what_every_task_lists(store: Store):
    """The overdue list, the pre-warned and a grid's open tasks read open_tasks: they equal the same
    lists read from every task, before and after closed tasks are cleaned out, and after the same
    updates arrive again in other batches (the newest version wins; a closed one stays out)."""
    from infra.store.queries import ATTENTION_COLUMNS, OPEN_SQL, OVERDUE_SQL
    from pipeline.sla import FINISH_RUNNING

    def from_every_task(where: str, as_of: dt.datetime) -> list[tuple]:
        return [tuple(r) for r in store.query(
            f"SELECT task_id, {OVERDUE_SQL} FROM {{db}}.tasks FINAL WHERE {where} ORDER BY finish_by, task_id",
            {"now": as_of.timestamp(), "grid": GRIDS[0]})]

    def lists(as_of: dt.datetime) -> dict:
        return {"overdue": [(t["task_id"], t["overdue"]) for t in store.overdue(as_of, 500)],
                "prewarned": [(t["task_id"], t["overdue"]) for t in store.overdue(as_of, 500, prewarned=True)],
                "grid": [(t["task_id"], t["overdue"]) for t in store.grid_tasks(GRIDS[0], as_of, 500)]}

    def wanted(as_of: dt.datetime) -> dict:
        return {"overdue": from_every_task(OVERDUE_SQL, as_of),
                "prewarned": from_every_task(f"status IN {FINISH_RUNNING} AND finish_warn_at <= toDateTime64(%(now)s, 3)",
                                             as_of),
                "grid": from_every_task(f"grid_code = %(grid)s AND {OPEN_SQL}", as_of)}

    updates = mixed_task_lives(seed=11)
    for first in range(0, len(updates), 97):
        store.insert(updates[first:first + 97])
    as_of = NOW + dt.timedelta(hours=12)
    before = lists(as_of)
    assert before == wanted(as_of) and all(before.values()) and not all(o for _, o in before["grid"])
    open_count = store.count("open_tasks")
    assert 0 < open_count < 240 and store.count("open_tasks", final=False) > open_count
    store.clean_open_tasks()
    assert store.count("open_tasks", final=False) == open_count  # the closed ones are gone for good
    assert lists(as_of) == before
    for first in range(0, len(updates), 41):  # redelivered after the clean-up, batched otherwise
        store.insert(updates[first:first + 41])
    assert lists(as_of) == before
    assert set(ATTENTION_COLUMNS) <= set(store.overdue(as_of, 1)[0])


def test_the_trend_counts_what_the_reports_and_tasks_count(store: Store):
    """The trend reads activity_hours: per hour and per city day it equals the counts taken straight
    from the incidents and the tasks, also after the same messages arrive again in other batches."""
    updates = mixed_task_lives(seed=3)
    reports = [i.model_copy(update={"reported_at": NOW - dt.timedelta(hours=7 * n)}) for n, i in enumerate(incidents(40))]
    for first in range(0, len(updates), 97):
        store.insert(updates[first:first + 97])
    store.insert(reports[:25])
    since, until, zone = NOW - dt.timedelta(days=14), NOW + dt.timedelta(days=9), "Asia/Shanghai"

    def straight(bucket: str) -> list[dict]:
        start = f"toStartOf{bucket.capitalize()}({{}}, '{zone}')"
        counts: dict = {}
        for sql in (f"SELECT {start.format('reported_at')}, 'incidents', count() FROM {{db}}.incidents FINAL GROUP BY 1",
                    f"SELECT {start.format('dispatched_at')}, 'dispatched', count() FROM {{db}}.tasks FINAL GROUP BY 1",
                    f"SELECT {start.format('assumeNotNull(closed_at)')}, 'closed', count() FROM {{db}}.tasks FINAL "
                    "WHERE closed_at IS NOT NULL GROUP BY 1",
                    f"SELECT {start.format('assumeNotNull(closed_at)')}, 'closed_on_time', count() FROM {{db}}.tasks FINAL "
                    "WHERE closed_at IS NOT NULL AND completed_at <= finish_by GROUP BY 1"):
            for at, figure, n in store.query(sql):
                at = (at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)).astimezone(dt.timezone.utc)
                counts.setdefault(at.isoformat(), dict.fromkeys(("incidents", "dispatched", "closed", "closed_on_time"), 0))[figure] = n
        return [{"at": at, **row} for at, row in sorted(counts.items())]

    hourly, daily = store.trend("hour", since, until, zone), store.trend("day", since, until, zone)
    assert hourly == straight("hour") and daily == straight("day")
    assert sum(r["incidents"] for r in daily) == 25 and sum(r["dispatched"] for r in daily) == 240
    assert 0 < sum(r["closed_on_time"] for r in daily) < sum(r["closed"] for r in daily)
    for first in range(0, len(updates), 41):  # redelivered, batched otherwise, with more reports
        store.insert(updates[first:first + 41])
    store.insert(reports[10:])
    assert store.trend("hour", since, until, zone) == straight("hour")
    assert sum(r["incidents"] for r in store.trend("day", since, until, zone)) == 40
    # The counts can be rebuilt from the copies.
    store.query("TRUNCATE TABLE {db}.activity_hours")
    assert store.trend("day", since, until, zone) == []
    store.refresh_activity()
    assert store.trend("hour", since, until, zone) == straight("hour")


def test_stats_sum_what_counting_every_row_counts(store: Store):
    """/stats/ sums activity_hours and the SLA rollup: its figures equal the counts taken over every
    row of the tables, also after the same messages arrive again in other batches."""
    from schemas import TaskEvent

    updates = mixed_task_lives(seed=5)
    merged = [TaskEvent(event_id=f"m{n}-{task}", task_id=f"task{task}", incident_id=f"late{n}", unit="cgj", kind="merged",
                        at=NOW - dt.timedelta(hours=n)) for n in range(6) for task in (n, n + 1)]  # two tasks each
    for first in range(0, len(updates), 97):
        store.insert(updates[first:first + 97])
    store.insert(merged)
    store.insert(incidents(30))

    def straight() -> dict:
        one = lambda sql: store.query(sql)[0][0]  # noqa: E731
        per_unit = dict(store.query("SELECT unit, count() FROM {db}.dispatches FINAL WHERE role = 'primary' "
                                    "AND attempt = 0 GROUP BY unit ORDER BY count() DESC, unit"))
        return {
            "clickhouse_incidents": store.count("incidents"), "clickhouse_dispatches": store.count("dispatches"),
            "clickhouse_task_events": store.count("task_events"),
            "merged": one("SELECT uniqExact(incident_id) FROM {db}.task_events FINAL WHERE kind = 'merged'"),
            "clickhouse_tasks": store.count("tasks"),
            "tasks_by_status": dict(store.query("SELECT status, count() FROM {db}.tasks FINAL GROUP BY status")),
            "task_events_by_kind": dict(store.query("SELECT kind, count() FROM {db}.task_events FINAL GROUP BY kind")),
            "rerouted": one("SELECT count() FROM {db}.dispatches FINAL WHERE attempt > 0 AND role = 'primary'"),
            "returned_primary": one("SELECT count() FROM {db}.tasks FINAL WHERE status = 'returned' AND role = 'primary'"),
            "dispatched": sum(per_unit.values()), "dispatched_per_unit": per_unit,
        }

    def summed() -> dict:
        return {name: value for name, value in store.stats().items() if name in wanted}

    wanted = straight()
    assert summed() == wanted
    assert wanted["merged"] == 6 and wanted["clickhouse_incidents"] == 30 and wanted["returned_primary"] > 0
    assert len(wanted["tasks_by_status"]) >= 5 and wanted["clickhouse_task_events"] > wanted["clickhouse_tasks"] == 240
    for first in range(0, len(updates), 41):  # redelivered, batched otherwise
        store.insert(updates[first:first + 41])
    store.insert(merged[::-1])
    store.insert(incidents(40))
    wanted = straight()
    assert summed() == wanted and wanted["clickhouse_incidents"] == 40


def test_an_instant_is_compared_to_the_microsecond_not_the_whole_second(store: Store):
    """clickhouse-connect renders a datetime parameter to the whole second: `reported_at <= now` then
    missed a report received earlier in that same second (infra.store.client.with_fractions)."""
    at = dt.datetime(2026, 12, 7, 10, 0, 0, 700_000, tzinfo=dt.timezone.utc)
    assert store.query("SELECT toDateTime64('2026-12-07 10:00:00.500', 3, 'UTC') <= %(at)s, "
                       "toDateTime64('2026-12-07 10:00:00.800', 3, 'UTC') <= %(at)s, "
                       "toDateTime64('2026-12-07 10:00:00.500', 3, 'UTC') IN %(list)s",
                       {"at": at, "list": [at - dt.timedelta(milliseconds=200)]}) == [(1, 0, 1)]
