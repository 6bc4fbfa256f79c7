"""For hotline vendors who write to Kafka directly instead of POSTing to the api: validate a report
with the same models the workers read, produce it to its intake topic keyed by its own id, and say
when the broker has it.

    from infra.kafka.intake_client import IntakeClient
    with IntakeClient("kafka1:9092", security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                      sasl_plain_username="vendor", sasl_plain_password="…") as client:
        delivery = client.send({"ticket_no": "GD-1", "received_at": "2026-12-01T09:30:00+08:00",
                                "text": "小区门口的路灯坏了"}, source="hotline")
        print(delivery.result(timeout=10))   # Delivered(incident_id=…, topic=…, partition=…, offset=…)

A report that does not validate raises `InvalidReport` naming each field and why (never its value)
before anything is sent. Producing is idempotent with acks=all, and a report sent twice (same
ticket number) is one incident downstream. Runnable: `python -m infra.kafka.intake_client --help`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from pydantic import BaseModel

from pipeline.normalize import INTAKE_MODELS, IntakeError, IntakeMessage, incident_id_of, source_id, validate_intake
from schemas.topics import TopicNames

SCHEMA_HEADER = "cityops-schema"  # the model the value follows, e.g. HotlineTicket


class InvalidReport(ValueError):
    """The report does not validate; the message names the fields."""


@dataclass(frozen=True)
class Delivered:
    incident_id: str
    topic: str
    partition: int
    offset: int


class Delivery:
    """A sent report: `result()` waits for the broker's acknowledgement (raises if it failed)."""

    def __init__(self, incident_id: str, future):
        self.incident_id, self._future = incident_id, future

    def result(self, timeout: float = 30) -> Delivered:
        metadata = self._future.get(timeout=timeout)
        return Delivered(self.incident_id, metadata.topic, metadata.partition, metadata.offset)


class IntakeClient:
    def __init__(self, bootstrap_servers: str, *, topic_prefix: str = "", **kafka_options: Any):
        self.names = TopicNames(topic_prefix)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True,
                                      linger_ms=5, **kafka_options)

    def validate(self, report: Mapping | BaseModel, source: str | None = None) -> IntakeMessage:
        if isinstance(report, BaseModel):
            return report
        source = source or report.get("source")
        if source not in INTAKE_MODELS:
            raise InvalidReport(f"source: one of {', '.join(INTAKE_MODELS)} (pass source= or set the field)")
        try:  # exactly what the workers check
            return validate_intake(source, dict(report))
        except IntakeError as exc:
            raise InvalidReport(str(exc)) from None

    def send(self, report: Mapping | BaseModel, source: str | None = None) -> Delivery:
        message = self.validate(report, source)
        future = self.producer.send(
            self.names.intake(message.source), key=source_id(message).encode(),
            value=message.model_dump_json(exclude_none=True).encode(),
            headers=[(SCHEMA_HEADER, type(message).__name__.encode()), ("content-type", b"application/json")])
        return Delivery(incident_id_of(message), future)

    def send_message(self, topic: str, key: str, message: BaseModel) -> Delivery:
        """Another cityops message (a replay's dead letter) onto `topic`, keyed by `key`."""
        return Delivery("", self.producer.send(topic, key=key.encode(), value=message.model_dump_json().encode()))

    def close(self, timeout: float = 30) -> None:
        self.producer.flush(timeout)
        self.producer.close(timeout)

    def __enter__(self) -> IntakeClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """Send the reports in a JSON-lines file (one report per line) and print each delivery."""
    parser = argparse.ArgumentParser(prog="python -m infra.kafka.intake_client", description=main.__doc__)
    parser.add_argument("file", help="JSON lines; each report has a `source` or use --source")
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--source", choices=sorted(INTAKE_MODELS))
    parser.add_argument("--topic-prefix", default="")
    args = parser.parse_args(argv)
    failed = 0
    with IntakeClient(args.bootstrap_servers, topic_prefix=args.topic_prefix) as client, open(args.file) as lines:
        for n, line in enumerate(lines, 1):
            try:
                delivered = client.send(json.loads(line), args.source).result()
            except (InvalidReport, json.JSONDecodeError) as exc:
                failed += 1
                print(f"line {n}: not sent: {exc}", file=sys.stderr)
                continue
            print(f"line {n}: incident {delivered.incident_id} at {delivered.topic}/{delivered.partition}"
                  f"@{delivered.offset}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
