"""What the integration tests count after a run: which events landed, and lost and doubled counted
where each would show (raw rows, not only FINAL)."""

from __future__ import annotations

from infra.store import Store
from pipeline.loadgen import IntakeEvent
from pipeline.normalize import incident_id_of, parse_intake


def expected_incident_ids(events: list[IntakeEvent]) -> set[str]:
    return {incident_id_of(parse_intake(e.source, e.value)) for e in events if e.valid}


def all_landed(n: int, valid: int):
    def check(stats: dict) -> bool:
        return (stats["clickhouse_incidents"] + stats["deadlettered"] >= n
                and stats["dispatched"] + stats["manual"] + stats["merged"] >= valid)
    return check


def stored_ids(env: dict[str, str], table: str, column: str) -> list[str]:
    """Read the worker's chDB directory once the worker has stopped (chDB: one process at a time)."""
    with Store(env["CLICKHOUSE_URL"]) as store:
        return [r[0] for r in store.query(f"SELECT {column} FROM {{db}}.{table} FINAL")]


def assert_each_stored_once(env: dict[str, str], events: list[IntakeEvent]) -> dict[str, int]:
    """Lost and doubled, counted where each would show, and asserted 0; returns the counts to print.

    - lost: a valid event whose incident is not stored;
    - doubled incidents: one id stored with two different contents (raw rows, not FINAL, which keeps one);
    - routed twice: an incident with two first-routing primary dispatches, or dispatched and also merged;
    - alerts twice: one task's limit and kind alerted under two ids (raw rows);
    - task events twice or missing: a task's version (events applied) against its stored events.
    Copies of one message with the same content (at-least-once redelivery after a kill) are counted apart:
    the ids make them one."""
    expected = expected_incident_ids(events)
    with Store(env["CLICKHOUSE_URL"]) as store:
        stored = {r[0]: (r[1], r[2]) for r in store.query(
            "SELECT incident_id, count(), uniqExact(cityHash64(source, source_id, reported_at, title, text, "
            "ifNull(street, ''), ifNull(grid_code, ''))) FROM {db}.incidents GROUP BY incident_id")}
        routed_twice = store.query(
            "SELECT incident_id FROM (SELECT incident_id, uniqExact(dispatch_id) AS n FROM {db}.dispatches "
            "WHERE attempt = 0 AND role = 'primary' GROUP BY incident_id) AS d "
            "LEFT JOIN (SELECT DISTINCT incident_id, 1 AS m FROM {db}.task_events WHERE kind = 'merged') AS e "
            "USING incident_id WHERE n + e.m > 1 SETTINGS join_use_nulls = 0")
        alerted_twice = store.query(
            "SELECT task_id, kind, `limit` FROM {db}.alerts WHERE task_id != '' GROUP BY task_id, kind, `limit`, "
            "due_at HAVING uniqExact(alert_id) > 1")
        versions_off = store.query(
            "SELECT t.task_id FROM (SELECT task_id, version FROM {db}.tasks FINAL) AS t "
            "LEFT JOIN (SELECT task_id, count() AS events FROM {db}.task_events FINAL GROUP BY task_id) AS e "
            "USING task_id WHERE t.version != e.events")
    counts = {
        "lost": len(expected - stored.keys()), "unexpected": len(stored.keys() - expected),
        "doubled_incidents": sum(1 for _, contents in stored.values() if contents > 1),
        "routed_twice": len(routed_twice), "alerted_twice": len(alerted_twice), "task_versions_off": len(versions_off),
        "redelivered_copies": sum(copies - 1 for copies, _ in stored.values()),
    }
    assert {k: v for k, v in counts.items() if k != "redelivered_copies" and v} == {}, (
        counts, routed_twice[:5], alerted_twice[:5], versions_off[:5])
    return counts


def outcome_line(counts: dict[str, int]) -> str:
    return (f"{counts['lost']} lost, {counts['doubled_incidents']} incidents doubled, {counts['routed_twice']} routed "
            f"twice, {counts['alerted_twice']} alerted twice, {counts['task_versions_off']} task versions off their "
            f"events ({counts['redelivered_copies']} redelivered copies of an incident, collapsed by id)")
