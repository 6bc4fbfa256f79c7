"""Messages cityops writes: incidents, dispatches, task events, operator queue, dead letters.

Every message carries a deterministic id derived from its input, so a replay produces the
same ids and every consumer (tables, ClickHouse) can de-duplicate.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.intake import GeoPoint

Source = Literal["hotline", "grid", "sensor", "whistle"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Incident(_Event):
    """One report, normalised: the same shape whatever source it came from. No PII in clear."""

    incident_id: str
    source: Source
    source_id: str
    reported_at: AwareDatetime
    normalized_at: AwareDatetime
    title: str = ""
    text: str = Field(description="report text with phone and ID numbers masked")
    address: str | None = None
    location: GeoPoint | None = None
    # Resolved against the city registry (unit codes); `location_problem` says why any is missing.
    district: str | None = None
    street: str | None = None
    community: str | None = None
    grid_code: str | None = None
    location_method: Literal["gps", "grid_code", "reported", "address", "text", "none"] = "none"
    location_problem: str | None = None
    category_hint: str | None = None
    reporter_hash: str | None = Field(default=None, description="salted SHA-256 of the caller phone")
    sensor_kind: str | None = None
    sensor_value: float | None = None
    whistle_unit: str | None = Field(default=None, description="the street that blew the whistle")
    dutylist_version: str | None = Field(default=None, description="the list in force when it came in; "
                                         "it is routed by that version even if a new one is published meanwhile")
    summoned_units: list[str] = Field(default_factory=list)


class Dispatch(_Event):
    """An incident sent to one unit, naming the duty-list item and version it followed."""

    dispatch_id: str
    incident_id: str
    unit: str
    role: Literal["primary", "cooperating"]
    item_no: str
    item_title: str
    top_class: str
    dutylist_version: str
    local_list: str | None = Field(default=None, description="jurisdiction whose local list (一乡一单) applied")
    legal_basis: str
    confidence: float = Field(ge=0, le=1)
    reason: str
    dispatched_at: AwareDatetime
    accept_within_hours: float
    finish_within_days: float


class ManualReview(_Event):
    """An incident the pipeline could not route with confidence: the operator decides."""

    incident_id: str
    reason: str
    candidates: list[str] = Field(default_factory=list, description="top candidate item numbers, best first")
    tanpai_refused: bool = Field(default=False, description="a dispatch to a street/community the list does not "
                                 "name was refused (no 摊派)")
    dutylist_version: str | None = None
    queued_at: AwareDatetime


TaskEventKind = Literal[
    "dispatched", "accepted", "returned", "completed", "verified", "rework", "closed", "evaluated",
    "extension_requested", "extension_approved", "extension_refused", "supervised", "escalated", "parked",
    "resumed",  # back from 挂账 (parked)
    "merged",  # another report of the same problem joined this task's case
]


class TaskEvent(_Event):
    """One step in a dispatched task's life (派单 → 接单 → 办结 → 回访)."""

    event_id: str
    task_id: str
    incident_id: str
    unit: str
    kind: TaskEventKind
    at: AwareDatetime
    note: str = ""


class DeadLetter(_Event):
    """A message that failed a stage, with where it came from and why. Nothing is dropped."""

    dead_letter_id: str
    topic: str
    partition: int
    offset: int
    stage: str
    reason: str
    payload: str = Field(description="the original bytes as text; may hold PII, so it stays on the topic")
    failed_at: AwareDatetime


class DutyListVersion(_Event):
    """A duty-list version as published on the `dutylists` topic (`cityops dutylist publish`)."""

    version: str = Field(min_length=1)
    published_at: AwareDatetime
    published_by: str = Field(default="", max_length=64, description="operator account, for the audit trail")
    yaml: str = Field(min_length=1, description="the duty-list file exactly as published")


class OperatorDecision(_Event):
    """An operator's ruling on an incident in the manual queue (`cityops dispatch manual`, later HTTP)."""

    decision_id: str
    incident_id: str
    item_no: str = Field(min_length=1)
    units: list[str] = Field(default_factory=list, description="empty: the units the item names; else the "
                             "operator's choice, first is primary (still subject to the 摊派 guard)")
    operator: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=500)
    decided_at: AwareDatetime


class ClassifiedIncident(_Event):
    """An incident classified and routable, on its way to the case stage (keyed by `case_key`), which
    either opens a case and sends `dispatches`, or merges it into an open case of the same problem."""

    case_key: str
    incident: Incident
    confidence: float
    dispatches: list[Dispatch] = Field(min_length=1)


class Alert(_Event):
    """Something the operations centre must look at now (hotspots here; overdue work later)."""

    alert_id: str
    kind: Literal["hotspot"]
    item_no: str
    place: str = Field(description="grid code or community code")
    reports: int
    first_at: AwareDatetime
    last_at: AwareDatetime
    raised_at: AwareDatetime
