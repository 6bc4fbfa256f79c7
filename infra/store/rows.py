"""Messages to rows: the one place a topic message meets a table's columns."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pydantic import BaseModel

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
    WebhookAttempt,
)


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
