"""The vendors' Kafka helper: a valid ticket is produced keyed by its number with the schema header,
and the delivery names the incident; an invalid one is refused before sending, naming the field."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer

from infra.kafka.admin import ensure_cityops_topics
from infra.kafka.intake_client import IntakeClient, InvalidReport, main
from pipeline import ids
from schemas.topics import TopicNames

TICKET = {"ticket_no": "V-1", "received_at": "2026-12-01T09:30:00+08:00", "caller_phone": "13812345678",
          "text": "小区门口的路灯坏了"}


def test_a_vendor_sends_a_ticket_and_learns_its_incident(broker, topic_prefix, tmp_path, capsys):
    ensure_cityops_topics(broker.bootstrap_servers, TopicNames(topic_prefix), partitions=4)
    with IntakeClient(broker.bootstrap_servers, topic_prefix=topic_prefix) as client:
        delivered = client.send(TICKET, source="hotline").result(timeout=10)
        with pytest.raises(InvalidReport, match="caller_phone") as refused:
            client.send(TICKET | {"caller_phone": "555"}, source="hotline")
        assert "555" not in str(refused.value)
    assert delivered.incident_id == ids.incident_id("hotline", "V-1")
    assert delivered.topic == f"{topic_prefix}intake.hotline"

    lines = tmp_path / "tickets.jsonl"
    lines.write_text(json.dumps(TICKET | {"ticket_no": "V-2"}) + "\n" + json.dumps({"text": "no number"}) + "\n")
    assert main([str(lines), "--bootstrap-servers", broker.bootstrap_servers, "--source", "hotline",
                 "--topic-prefix", topic_prefix]) == 1
    out, err = capsys.readouterr()
    assert "line 1: incident" in out and "line 2: not sent: ticket_no" in err

    consumer = KafkaConsumer(delivered.topic, bootstrap_servers=broker.bootstrap_servers, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    records = list(consumer)
    consumer.close()
    assert sorted(r.key for r in records) == [b"V-1", b"V-2"]
    assert dict(records[0].headers)["cityops-schema"] == b"HotlineTicket"
