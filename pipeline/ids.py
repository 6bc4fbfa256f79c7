"""Deterministic ids: the same input always yields the same id, so replays de-duplicate."""

from __future__ import annotations

import uuid

# Fixed namespace so ids are stable across processes, machines and releases.
_NAMESPACE = uuid.UUID("6f0c3a52-2f1e-4c1b-9a57-0c1d2e3f4a5b")


def stable_id(*parts: object) -> str:
    return uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)).hex


def incident_id(source: str, source_id: str) -> str:
    return stable_id("incident", source, source_id)


def dispatch_id(incident_id: str, unit: str, role: str, attempt: int = 0) -> str:
    """`attempt` counts re-routings after returns: the same unit may get the incident again later."""
    if attempt == 0:
        return stable_id("dispatch", incident_id, unit, role)
    return stable_id("dispatch", incident_id, unit, role, attempt)


def task_event_id(task_id: str, kind: str, seq: int = 0) -> str:
    return stable_id("task-event", task_id, kind, seq)


def dead_letter_id(topic: str, partition: int, offset: int, stage: str, batch_index: int | None = None) -> str:
    """One per message and stage: a batch record's messages are told apart by their place in it."""
    if batch_index is None:
        return stable_id("dead-letter", topic, partition, offset, stage)
    return stable_id("dead-letter", topic, partition, offset, batch_index, stage)
