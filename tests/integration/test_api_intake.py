"""Intake over HTTP on a real broker: a ticket is answered once the broker holds it, with the incident
id the workers will give it; bad input is a problem document naming the field, never its value; a
retry with the same Idempotency-Key creates nothing; a broker gone mid-stream gets 503 + Retry-After."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer

from infra.api import keys
from infra.api.app import create_api
from infra.kafka.admin import ensure_cityops_topics
from infra.kafka.broker import start_embedded_broker
from infra.settings import Settings
from pipeline import ids
from schemas.topics import TopicNames

TICKET = {"ticket_no": "GD-2026-000123", "received_at": "2026-12-01T09:30:00+08:00", "caller_name": "王小明",
          "caller_phone": "13812345678", "title": "路灯不亮", "text": "小区门口的路灯坏了好几天，晚上很黑"}
READING = {"sensor_id": "WL-7", "kind": "water_level", "value": 0.42, "unit": "m",
           "measured_at": "2026-12-01T10:00:00+08:00", "location": {"lat": 39.9, "lon": 116.4}}


@pytest.fixture
def api(broker, topic_prefix, store, tmp_path):
    settings = Settings(data_dir=tmp_path, kafka_bootstrap_servers=broker.bootstrap_servers, topic_prefix=topic_prefix)
    ensure_cityops_topics(broker.bootstrap_servers, TopicNames(topic_prefix), partitions=4)
    token = keys.issue(settings.resolved_api_keys_file(), "vendor", ["intake"])[1]
    with TestClient(create_api(settings, store, sink=None)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _on_topic(broker, topic: str) -> list[tuple[str, dict]]:
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=3000)
    try:
        return [(r.key.decode(), json.loads(r.value)) for r in consumer]
    finally:
        consumer.close()


def test_a_ticket_is_answered_with_its_incident_id_once_the_broker_holds_it(api, broker, topic_prefix):
    answer = api.post("/intake/hotline-tickets", json=TICKET)
    assert answer.status_code == 201, answer.text
    receipt = answer.json()
    assert receipt["incident_id"] == ids.incident_id("hotline", TICKET["ticket_no"])
    assert receipt["status_url"] == f"/status/{TICKET['ticket_no']}"
    [(key, value)] = _on_topic(broker, f"{topic_prefix}intake.hotline")
    assert key == TICKET["ticket_no"] and value["text"] == TICKET["text"]


def test_bad_input_names_the_field_and_never_echoes_its_value(api):
    answer = api.post("/intake/hotline-tickets", json=TICKET | {"caller_phone": "99912345678", "text": ""})
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert {e["field"] for e in problem["errors"]} == {"body.caller_phone", "body.text"}
    assert "99912345678" not in answer.text
    unknown = api.post("/intake/hotline-tickets", json=TICKET | {"priority": "high"}).json()
    assert [e["field"] for e in unknown["errors"]] == ["body.priority"]
    assert api.post("/intake/hotline-tickets", content=b"{not json", headers={"Content-Type": "application/json"}
                    ).status_code == 422
    future = api.post("/intake/hotline-tickets", json=TICKET | {"received_at": "9999-01-01T00:00:00+08:00"}).json()
    assert future["status"] == 422 and [e["field"] for e in future["errors"]] == ["body.received_at"]
    tomorrow = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)  # within the years, but in the future
    later = api.post("/intake/hotline-tickets", json=TICKET | {"received_at": tomorrow.isoformat()}).json()
    assert later["status"] == 422 and [e["field"] for e in later["errors"]] == ["body.received_at"]
    # What became of an order is for the units to say, not a client: only `cityops replay` sets history.
    closed = api.post("/intake/hotline-tickets", json=TICKET | {"history": {"closed_at": "2026-12-01T10:00:00+08:00"}})
    assert closed.status_code == 422 and [e["field"] for e in closed.json()["errors"]] == ["history"]


def test_a_retry_with_the_same_idempotency_key_creates_nothing(api, broker, topic_prefix):
    headers = {"Idempotency-Key": "retry-1"}
    first = api.post("/intake/whistles", headers=headers, json={
        "whistle_id": "W-9", "unit": "a1-s01", "blown_at": "2026-12-01T09:00:00+08:00",
        "text": "违建占道，需城管、住建联合处置", "summoned_units": ["cgj", "zjj"]})
    again = api.post("/intake/whistles", headers=headers, json=json.loads(first.request.content))
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(_on_topic(broker, f"{topic_prefix}intake.whistle")) == 1
    other = api.post("/intake/whistles", headers=headers, json=json.loads(first.request.content) | {"text": "另一件事"})
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]


def test_a_sensor_batch_answers_each_reading(api, broker, topic_prefix):
    readings = [READING, READING | {"kind": "lava"}, READING | {"measured_at": "2026-12-01T10:05:00+08:00"},
                READING | {"value": 1e308}, READING | {"measured_at": "2400-01-01T00:00:00+08:00"}]
    answer = api.post("/intake/sensor-readings", json={"readings": readings})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    assert [r["accepted"] for r in body["results"]] == [True, False, True, False, False]
    assert [r["errors"][0]["field"] for r in body["results"] if not r["accepted"]] == ["kind", "value", "measured_at"]
    assert len(_on_topic(broker, f"{topic_prefix}intake.sensor")) == 2
    assert api.post("/intake/sensor-readings", json={"readings": [READING] * 1001}).status_code == 422


def test_the_broker_gone_mid_stream_gets_503_with_retry_after(store, tmp_path, topic_prefix):
    own = start_embedded_broker(log_file=tmp_path / "tansu.log")
    settings = Settings(data_dir=tmp_path, kafka_bootstrap_servers=own.bootstrap_servers, topic_prefix=topic_prefix,
                        api_publish_timeout_seconds=2)
    try:
        ensure_cityops_topics(own.bootstrap_servers, TopicNames(topic_prefix), partitions=4)
        token = keys.issue(settings.resolved_api_keys_file(), "vendor", ["intake"])[1]
        with TestClient(create_api(settings, store, sink=None)) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            assert client.post("/intake/hotline-tickets", json=TICKET).status_code == 201
            own.process.kill()
            own.process.wait()
            gone = client.post("/intake/hotline-tickets", json=TICKET | {"ticket_no": "GD-2026-000124"})
            assert gone.status_code == 503 and gone.headers["Retry-After"] == "5"
            assert "nothing was accepted" in gone.json()["detail"]
    finally:
        own.stop()
