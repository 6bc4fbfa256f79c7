"""The ClickHouse store on real chDB: idempotent DDL, idempotent batches, no PII columns."""

import datetime as dt

from infra.store import Store
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
    from infra.store import TABLES
    from schemas import (
        Alert,
        DutyListVersion,
        ManualReview,
        OperatorDecision,
        TaskEvent,
    )

    examples = [
        incidents(1)[0],
        Dispatch(dispatch_id="d", incident_id="i", unit="cgj", role="primary", item_no="1", item_title="t",
                 top_class="城乡建设", dutylist_version="v", legal_basis="b", confidence=1, reason="r",
                 dispatched_at=NOW, accept_within_hours=1, finish_within_days=1),
        TaskEvent(event_id="e", task_id="d", incident_id="i", unit="cgj", kind="dispatched", at=NOW),
        ManualReview(incident_id="i", reason="r", queued_at=NOW),
        DeadLetter(dead_letter_id="x", topic="t", partition=0, offset=0, stage="s", reason="r", payload="p", failed_at=NOW),
        DutyListVersion(version="v", published_at=NOW, yaml="version: v"),
        OperatorDecision(decision_id="o", incident_id="i", item_no="1", operator="op", decided_at=NOW),
        Alert(alert_id="a", kind="hotspot", item_no="1", place="g", reports=5, first_at=NOW, last_at=NOW, raised_at=NOW),
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
