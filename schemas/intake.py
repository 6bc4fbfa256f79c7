"""Messages the outside world puts on the intake topics, one model per source."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from schemas.fields import Code, Instant, NonEmpty, OneLine, Phone

# A grid's code (GB/T 30428): district adcode, street, community and grid, 15 digits.
GridCode = Annotated[str, Field(pattern=r"^\d{15}$")]


class _Message(BaseModel):
    # Unknown fields are an integration bug worth hearing about, not something to drop quietly.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class GeoPoint(_Message):
    """WGS-84 coordinates (what phones and GPS modules report)."""

    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)


class _Report(_Message):
    submitted_by: Code | None = Field(default=None, description="the id of the API key that sent the report, set "
                                      "by the api (refused from clients): the key that may score its result")


class OrderHistory(_Message):
    """What happened to a historical work order, as its record says (`cityops replay` sets it; the api
    refuses it from integrations): the pipeline keeps these times instead of the clock's, dispatches
    to the unit the record names, and raises no SLA alerts for it."""

    unit: Code | None = Field(default=None, description="the unit the order went to (a code derived from its "
                              "name where the name is not one: pipeline.replay.unit_code); None: the duty list routes it")
    unit_name: OneLine | None = Field(default=None, max_length=200, description="the unit's name as the record has it")
    item: OneLine | None = Field(default=None, max_length=64, description="the record's own category, the item when "
                             "the record names its unit")
    due_at: Instant | None = Field(default=None, description="the order's deadline; None: the duty list's "
                                   "limits give it")
    accepted_at: Instant | None = None
    closed_at: Instant | None = None
    mapping: OneLine = Field(default="", max_length=64, description="the replay mapping that read the record")


class HotlineTicket(_Report):
    """A 12345 work order (工单) as the hotline system hands it over."""

    source: Literal["hotline"] = "hotline"
    ticket_no: Code
    received_at: Instant
    channel: Literal["phone", "web", "app", "wechat", "sms", "other"] = "phone"
    caller_name: OneLine | None = Field(default=None, max_length=64, description="PII: never stored in clear")
    caller_phone: Phone | None = Field(default=None, description="PII: never stored in clear")
    title: OneLine = Field(default="", max_length=500)
    text: NonEmpty
    address: OneLine | None = Field(default=None, max_length=500)
    location: GeoPoint | None = None
    photo_urls: list[HttpUrl] = Field(default_factory=list, max_length=20, description="photos the caller sent "
                                      "(an app's or Open311's media_url), as links")
    district: OneLine | None = Field(default=None, max_length=64)
    street: OneLine | None = Field(default=None, max_length=64)
    category: OneLine | None = Field(default=None, max_length=64, description="the service the reporter chose (an "
                                 "Open311 service_code: a duty item), a hint checked against the text")
    history: OrderHistory | None = Field(default=None, description="a historical order replayed (`cityops "
                                         "replay`): what became of it")


class GridReport(_Report):
    """A grid worker's (网格员) report from the mobile app."""

    source: Literal["grid"] = "grid"
    report_id: Code
    worker_id: Code
    grid_code: GridCode
    reported_at: Instant
    text: NonEmpty
    photo_urls: list[HttpUrl] = Field(default_factory=list, max_length=20)
    location: GeoPoint
    category: OneLine | None = Field(default=None, max_length=64,
                                 description="the class the worker picked, checked later against the text")


SensorKind = Literal["water_level", "manhole_tilt", "smoke", "noise", "gas", "air_quality"]


class SensorReading(_Report):
    """One IoT reading that crossed the device's own reporting threshold."""

    source: Literal["sensor"] = "sensor"
    sensor_id: Code
    kind: SensorKind
    # Finite and within what any device reports: a 1e308 cm water level is a broken sensor, not a flood.
    value: float = Field(allow_inf_nan=False, ge=-1e6, le=1e6)
    unit: OneLine = Field(min_length=1, max_length=16)
    measured_at: Instant
    location: GeoPoint
    grid_code: GridCode | None = None


class Whistle(_Report):
    """街乡吹哨: a street or township summons departments to a problem it cannot solve alone."""

    source: Literal["whistle"] = "whistle"
    whistle_id: Code
    unit: Code = Field(description="the street/township unit blowing the whistle")
    blown_at: Instant
    text: NonEmpty
    summoned_units: list[Code] = Field(min_length=1, max_length=20)
    location: GeoPoint | None = None


def describe_validation_error(exc: ValidationError, *, name_unknown_fields: bool = False) -> str:
    """One line naming each failing field and why, e.g. `caller_phone: String should match pattern ...`.
    An unknown field's name is the sender's text, so it shows as `(unknown field)` unless
    `name_unknown_fields` (an operator's own file)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = [str(p) for p in err["loc"]]
        if err["type"] == "extra_forbidden" and not name_unknown_fields:
            loc[-1] = "(unknown field)"
        field = ".".join(loc) or "(message)"
        parts.append(f"{field}: {err['msg']}")
    return "; ".join(dict.fromkeys(parts))  # several unknown fields make one part
