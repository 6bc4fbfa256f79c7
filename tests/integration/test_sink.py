"""The ClickHouse sink on the real broker and chDB: a row the store refuses for its data is
dead-lettered and everything around it is stored (one bad row once froze every screen); a store that
takes nothing turns `/health` not ready and the figures' age grows."""

from __future__ import annotations

import datetime as dt
import json
import time

from kafka import KafkaProducer

from infra.store import Store
from pipeline import ids
from schemas.topics import TopicNames
from tests.integration.ledger import stored_ids

CN = dt.timezone(dt.timedelta(hours=8))
POISON = "POISON-ROW"


def _ticket(n: int, text: str) -> bytes:
    return json.dumps({"ticket_no": f"SINK-{n}", "received_at": dt.datetime.now(CN).isoformat(), "title": "路灯不亮",
                       "text": text, "address": "A1区马王堆街道"}, ensure_ascii=False).encode()


def test_a_row_the_store_refuses_is_dead_lettered_and_everything_after_it_is_stored(broker, pipeline_env,
                                                                                  start_worker):
    # A constraint makes the store refuse one row for what it holds, as a value out of a column's range
    # did (the server answers a data error: the same path as the client failing to serialise it).
    with Store(pipeline_env["CLICKHOUSE_URL"]) as store:
        store.migrate()
        store.query(f"ALTER TABLE {{db}}.incidents ADD CONSTRAINT poison CHECK position(text, '{POISON}') = 0")
    names = TopicNames(pipeline_env["CITYOPS_TOPIC_PREFIX"])
    deployment = start_worker(pipeline_env | {"CITYOPS_SINK_STALL_SECONDS": "10"})
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    texts = [f"小区门口第{n}盏路灯晚上不亮" for n in range(12)]
    texts[5] = f"第五盏路灯不亮 {POISON}"
    try:
        for n, text in enumerate(texts):  # one at a time: the poison lands in a batch with others
            producer.send(names.intake("hotline"), key=f"SINK-{n}".encode(), value=_ticket(n, text))
            time.sleep(0.3)
        producer.flush()
        deployment.wait_until(lambda s: s["clickhouse_incidents"] >= len(texts) - 1, timeout=90)
        assert deployment.wait_settled(timeout=60), deployment.last_lag
        health = deployment.api.health()
        assert health["ready"] and not health["sink"]["stalled"]
        assert deployment.api.get_json("/stats/")["figures_age_seconds"] < 10
    finally:
        deployment.stop()
        producer.close()
    stored = set(stored_ids(pipeline_env, "incidents", "incident_id"))
    wanted = {ids.incident_id("hotline", f"SINK-{n}") for n in range(len(texts))}
    poisoned = ids.incident_id("hotline", "SINK-5")
    assert stored & wanted == wanted - {poisoned}
    with Store(pipeline_env["CLICKHOUSE_URL"]) as store:
        letters = store.query("SELECT topic, reason FROM {db}.dead_letters FINAL WHERE stage = 'sink'")
    assert [topic for topic, _ in letters] == [names.incidents]
    reason = letters[0][1]
    assert reason.startswith("the store refused the row") and "VIOLATED_CONSTRAINT" in reason
    assert POISON not in reason and "路灯" not in reason  # never the row's values
