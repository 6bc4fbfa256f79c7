"""Messages cityops writes: incidents, dispatches, task events, operator queue, dead letters.

Every message carries a deterministic id derived from its input, so a replay produces the
same ids and every consumer (tables, ClickHouse) can de-duplicate.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.fields import Day, FreeText, Instant, OneLine, PhotoUrl
from schemas.intake import GeoPoint, OrderHistory

Source = Literal["hotline", "grid", "sensor", "whistle"]


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Incident(_Event):
    """One report, normalised: the same shape whatever source it came from. No PII in clear."""

    incident_id: str
    source: Source
    source_id: str
    reported_at: Instant
    normalized_at: Instant
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
    sensor_unit: str | None = None
    whistle_unit: str | None = Field(default=None, description="the street that blew the whistle")
    dutylist_version: str | None = Field(default=None, description="the list in force when it came in; "
                                         "it is routed by that version even if a new one is published meanwhile")
    summoned_units: list[str] = Field(default_factory=list)
    photo_urls: list[str] = Field(default_factory=list, description="photos of the problem as sent (links)")
    submitted_by: str | None = Field(default=None, description="the id of the API key that sent the report")
    content_hash: str = Field(default="", description="a hash of the report as sent: a reused id with other "
                              "content differs")
    history: OrderHistory | None = Field(default=None, description="a replayed historical order: what became of it")


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
    dispatched_at: Instant
    accept_within_hours: float
    finish_within_days: float
    candidates: list[str] = Field(default_factory=list, description="other items the classifier considered, best "
                                  "first: where a return for 职能不符 (wrong function) is re-routed")
    attempt: int = Field(default=0, ge=0, description="0 for the first routing; +1 for each re-routing after a return")
    due_at: Instant | None = Field(default=None, description="a replayed order's own deadline (its record's), "
                                         "instead of the one the limits give")
    model_version: str | None = Field(default=None, description="the text model whose classification sent it (None: "
                                      "an operator's ruling, a re-routing after a return, keywords or a sensor rule "
                                      "alone)")


class ManualReview(_Event):
    """An incident the pipeline could not route with confidence: the operator decides."""

    incident_id: str
    reason: str
    candidates: list[str] = Field(default_factory=list, description="top candidate item numbers, best first")
    tanpai_refused: bool = Field(default=False, description="a dispatch to a street/community the list does not "
                                 "name was refused (no 摊派)")
    dutylist_version: str | None = None
    top_class: str | None = Field(default=None, description="the class of the best candidate item (the queue's "
                                  "filter)")
    queued_at: Instant
    attempt: int = Field(default=0, ge=0, description="routings so far: >0 when a unit returned the incident")
    model_version: str | None = Field(default=None, description="the text model whose classification sent it here")
    incident: Incident | None = Field(default=None, description="the report, for the operator to read and decide "
                                      "on; not stored in the manual_reviews table (it is in incidents)")


TaskEventKind = Literal[
    "dispatched", "accepted", "returned", "completed", "verified", "rework", "closed", "evaluated",
    "extension_requested", "extension_approved", "extension_refused", "supervised", "escalated", "parked",
    "resumed",  # back from 挂账 (parked)
    "merged",  # another report of the same problem joined this task's case
    "prewarning", "overdue",  # the SLA clock: raised by the worker's timer, once per limit and deadline
    "review_due",  # a parked (挂账) task's review date has come
]
ReturnReason = Literal["职能不符", "属地不符", "other"]
SlaLimit = Literal["accept", "finish", "review"]


class TaskEvent(_Event):
    """One step in a dispatched task's life (派单 → 接单 → 办结 → 核查 → 结案 → 回访), on `task-events`
    keyed by task id. Departments, grid workers, the operations centre and the worker's own SLA
    timer all write here; the task stage applies each event once (same `event_id`: no-op) and
    dead-letters what the state machine does not allow."""

    event_id: str = Field(min_length=1, description="deterministic per fact: sending it twice is harmless")
    task_id: str = Field(min_length=1, description="the dispatch id")
    incident_id: str
    unit: str = Field(description="the unit the task is with")
    kind: TaskEventKind
    at: Instant
    by: OneLine = Field(default="", max_length=64, description="who acted: unit code, grid worker or operator "
                    "account, 'sla' for the timer; never a caller's name or phone")
    note: FreeText = Field(default="", max_length=2000)
    reason: FreeText | None = Field(default=None, max_length=500, description="returned: 职能不符/属地不符/other; "
                               "parked, rework: why")
    days: float | None = Field(default=None, gt=0, description="extension_approved: working days granted")
    review_on: Day | None = Field(default=None, description="parked: when to look at it again")
    score: Literal[1, 2, 3] | None = Field(default=None, description="evaluated: 1 不满意, 2 基本满意, 3 满意")
    result: FreeText | None = Field(default=None, max_length=2000, description="completed: what was done")
    photos: list[PhotoUrl] = Field(default_factory=list, max_length=20, description="completed, verified: photo URLs")
    limit: SlaLimit | None = Field(default=None, description="prewarning, overdue, escalated: which limit")
    due_at: Instant | None = Field(default=None, description="prewarning, overdue, escalated: the instant "
                                         "that passed")
    dispatch: Dispatch | None = Field(default=None, description="dispatched: the terms (item, limits)")
    incident: Incident | None = Field(default=None, description="dispatched: the report, kept with the task so "
                                      "a return can be re-routed")

    @model_validator(mode="after")
    def _dispatched_carries_its_dispatch(self) -> TaskEvent:
        if (self.kind == "dispatched") != (self.dispatch is not None):
            raise ValueError("dispatch: a dispatched event carries its dispatch, and only it does")
        return self


class TaskState(_Event):
    """A task as it stands after an event: every timestamp, the working-time deadlines, counts.
    On `task-updates` (keyed by task id) with the event that produced it; the `tasks` table in
    ClickHouse keeps the latest per task (by `version`), the source of the SLA figures."""

    task_id: str
    incident_id: str
    unit: str
    role: Literal["primary", "cooperating"]
    item_no: str
    top_class: str
    dutylist_version: str
    attempt: int = 0
    source: str = ""
    replayed: bool = Field(default=False, description="a historical order replayed: its times are its record's, "
                           "and the SLA timer raises nothing for it")
    district: str | None = None
    street: str | None = None
    community: str | None = None
    grid_code: str | None = None
    status: Literal["dispatched", "accepted", "extension_pending", "completed", "verified", "closed", "evaluated",
                    "returned", "parked"] = "dispatched"
    accept_within_hours: float
    finish_within_days: float
    dispatched_at: Instant
    accepted_at: Instant | None = None
    completed_at: Instant | None = None
    verified_at: Instant | None = None
    closed_at: Instant | None = None
    evaluated_at: Instant | None = None
    returned_at: Instant | None = None
    return_reason: str | None = None
    rework: int = 0
    extensions_requested: int = 0
    extension_days: float = 0.0
    supervised: int = 0
    escalated_at: Instant | None = None
    parked_at: Instant | None = None
    parked_reason: str | None = None
    review_on: Day | None = None
    paused_since: Instant | None = Field(default=None, description="extension pending or parked: the "
                                               "finish clock is stopped since then")
    paused_seconds: float = Field(default=0.0, description="working seconds the finish clock has been stopped")
    score: int | None = None
    reports: int = Field(default=1, description="reports merged into this task's case, the first included")
    due_at: Instant | None = Field(default=None, description="a replayed order's own finish deadline (its "
                                         "record's): finish_by starts from it instead of the limit")
    accept_by: Instant | None = None
    accept_warn_at: Instant | None = None
    finish_by: Instant | None = None
    finish_warn_at: Instant | None = None
    escalate_at: Instant | None = None
    accept_working_hours: float | None = Field(default=None, description="dispatch → accept, office hours only")
    finish_working_hours: float | None = Field(default=None, description="dispatch → (last) completion, office "
                                               "hours, the stopped clock excluded")
    alerts_raised: list[str] = Field(default_factory=list, description="'limit:kind@due' keys, so each is raised once")
    last_event_at: Instant
    version: int = Field(default=1, description="events applied; the tasks table keeps the highest")
    applied: list[str] = Field(default_factory=list, description="event ids applied (redelivery is a no-op)")


class TaskUpdate(_Event):
    """The task stage's output: an event it applied and the task after it."""

    event: TaskEvent
    task: TaskState


class DeadLetter(_Event):
    """A message that failed a stage, with where it came from and why. Nothing is dropped: a payload
    too large to carry (a 1 MB text, NUL bytes that grow sixfold in JSON) is cut, and its size and
    hash say what it was — the dead letter itself must never be what fails to send."""

    dead_letter_id: str
    topic: str
    partition: int
    offset: int
    batch_index: int | None = Field(default=None, ge=0, description="the message's place in a batch record "
                                    "(schemas/batches.py); None: the record held it alone")
    stage: str
    reason: str
    payload: str = Field(description="the original bytes as text (cut to MAX_PAYLOAD_CHARS); may hold PII, so it "
                         "stays on the topic")
    payload_bytes: int = Field(default=0, ge=0, description="size of the original message value")
    payload_sha256: str = Field(default="", description="SHA-256 of the original bytes (the store keeps only this)")
    payload_truncated: bool = False
    failed_at: Instant

    MAX_PAYLOAD_CHARS: ClassVar[int] = 64 * 1024  # ≤ 384 KB as JSON even if every character is escaped

    @classmethod
    def of(cls, value: bytes | None, **fields) -> DeadLetter:
        raw = value or b""
        text = raw.decode("utf-8", errors="replace")
        return cls(payload=text[:cls.MAX_PAYLOAD_CHARS], payload_bytes=len(raw),
                   payload_sha256=hashlib.sha256(raw).hexdigest(), payload_truncated=len(text) > cls.MAX_PAYLOAD_CHARS,
                   **fields)


class DutyListVersion(_Event):
    """A duty-list version as published on the `dutylists` topic (`cityops dutylist publish`)."""

    version: str = Field(min_length=1)
    published_at: Instant
    published_by: str = Field(default="", max_length=64, description="operator account, for the audit trail")
    yaml: str = Field(min_length=1, description="the duty-list file exactly as published")


class ModelVersion(_Event):
    """A text model put in force on every worker (`cityops model publish`, `cityops model rollback`): a
    version the model directory they share holds, named by its folder there."""

    version: str = Field(min_length=1, max_length=64)
    folder: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$",
                        description="its folder in CITYOPS_MODEL_DIR, e.g. topclass-20261206-cf3db7392c")
    published_at: Instant
    published_by: str = Field(default="", max_length=64, description="who put it in force, for the audit trail")
    note: str = Field(default="", max_length=500, description="why: a promotion's report, a rollback")


class OperatorDecision(_Event):
    """An operator's ruling on an incident in the manual queue (`cityops dispatch manual`, or the api):
    dispatch it under an item, or close it without a dispatch (answered directly, not a city matter)."""

    decision_id: str
    incident_id: str
    action: Literal["dispatch", "close"] = "dispatch"
    item_no: str = Field(default="", description="dispatch: the duty item")
    close_reason: Literal["answered", "invalid", "duplicate"] | None = Field(
        default=None, description="close: answered on the call (咨询/直接答复), invalid (无效), or a duplicate of "
        "another ticket (重复)")
    units: list[str] = Field(default_factory=list, description="empty: the units the item names; else the "
                             "operator's choice, first is primary (still subject to the 摊派 guard)")
    operator: OneLine = Field(min_length=1, max_length=64)
    note: FreeText = Field(default="", max_length=500)
    decided_at: Instant

    @model_validator(mode="after")
    def _dispatch_names_an_item(self) -> OperatorDecision:
        if self.action == "dispatch" and not self.item_no:
            raise ValueError("item_no: a dispatch names the duty item")
        if self.action == "close" and (self.close_reason is None or not self.note):
            raise ValueError("close_reason, note: closing without a dispatch says why")
        return self


class ClassifiedIncident(_Event):
    """A classified incident between the dispatcher and the case stage. Routable, it carries its
    `dispatches` and `case_key` (item and street); the case stage opens a case and sends them, or
    merges it into an open case of the same problem. Not routable, it carries the operator `review`.
    On the way the caller stage (keyed by reporter) may send a repeat call under the case key of the
    report it repeats (`repeat_of`): then it only joins that case, and goes to the operator if the
    case has closed."""

    case_key: str | None = Field(default=None, description="the case stage's key; None: bound for the operator")
    incident: Incident
    confidence: float
    dispatches: list[Dispatch] = Field(default_factory=list)
    review: ManualReview | None = None
    repeat_of: str | None = Field(default=None, description="an earlier report of the same reporter, near-identical")

    @model_validator(mode="after")
    def _routable_or_reviewed(self) -> ClassifiedIncident:
        if bool(self.dispatches) == (self.review is not None):
            raise ValueError("a classified incident has either dispatches or an operator review")
        if self.dispatches and self.case_key is None:
            raise ValueError("routable incidents need a case_key")
        return self


class Alert(_Event):
    """Something a unit or the operations centre must look at now: a hotspot (N reports of one item in
    one place), or a task's SLA — a pre-warning, an overdue limit, an escalation to the supervisor,
    the review date of a parked (挂账) task."""

    alert_id: str
    kind: Literal["hotspot", "prewarning", "overdue", "escalation", "review_due"]
    item_no: str
    to_unit: str = Field(default="", description="who must act: the task's unit; for an escalation its "
                         "supervising unit; empty for hotspots (the operations centre)")
    raised_at: Instant
    # hotspot
    place: str | None = Field(default=None, description="hotspot: grid code or community code")
    reports: int | None = None
    first_at: Instant | None = None
    last_at: Instant | None = None
    # SLA
    task_id: str | None = None
    incident_id: str | None = None
    unit: str | None = Field(default=None, description="the unit the task is with")
    limit: SlaLimit | None = None
    due_at: Instant | None = None


class WebhookAttempt(_Event):
    """One try at delivering an alert to a unit's webhook: every attempt is recorded."""

    attempt_id: str
    alert_id: str
    to_unit: str
    url: str = Field(description="without credentials")
    attempt: int = Field(ge=1)
    at: Instant
    status: int | None = Field(default=None, description="HTTP status; None when no response")
    error: str = ""
    delivered: bool
    seconds: float
