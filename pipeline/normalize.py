"""Intake message (any source) → one `Incident`."""

from __future__ import annotations

import datetime as dt
import json

from pydantic import BaseModel, ValidationError

from pipeline import ids
from pipeline.locate import Location, Locator
from pipeline.pii import hash_contact, redact_text
from schemas import GeoPoint, GridReport, HotlineTicket, Incident, SensorReading, Whistle, describe_validation_error

IntakeMessage = HotlineTicket | GridReport | SensorReading | Whistle

INTAKE_MODELS: dict[str, type[BaseModel]] = {
    "hotline": HotlineTicket,
    "grid": GridReport,
    "sensor": SensorReading,
    "whistle": Whistle,
}

_SENSOR_TITLES = {
    "water_level": "积水水位超限",
    "manhole_tilt": "井盖倾斜/移位",
    "smoke": "烟感报警",
    "noise": "噪声超标",
    "gas": "燃气浓度超限",
    "air_quality": "空气质量超标",
}


class IntakeError(ValueError):
    """A message that cannot become an incident; the text says which field and why."""


def parse_intake(source: str, raw: bytes) -> IntakeMessage:
    model = INTAKE_MODELS[source]
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntakeError(f"not JSON: {exc}") from None
    if isinstance(payload, dict):
        # The topic decides the source; a message claiming another is misrouted.
        claimed = payload.get("source", source)
        if claimed != source:
            raise IntakeError(f"source: message says {claimed!r} but arrived on the {source!r} intake topic")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise IntakeError(describe_validation_error(exc)) from None


def source_id(msg: IntakeMessage) -> str:
    """The report's own id at its source; with the source it makes the incident id."""
    match msg:
        case HotlineTicket():
            return msg.ticket_no
        case GridReport():
            return msg.report_id
        case SensorReading():  # a sensor reports again and again: each reading is its own report
            return f"{msg.sensor_id}@{msg.measured_at.isoformat()}"
        case Whistle():
            return msg.whistle_id
    raise TypeError(f"not an intake message: {type(msg).__name__}")


def incident_id_of(msg: IntakeMessage) -> str:
    return ids.incident_id(msg.source, source_id(msg))


def to_incident(msg: IntakeMessage, *, salt: str, now: dt.datetime, locator: Locator,
                dutylist_version: str | None = None) -> Incident:
    """The incident for `msg`, located, stamped with the duty-list version in force now."""
    return _incident(msg, salt=salt, now=now, locator=locator).model_copy(update={"dutylist_version": dutylist_version})


def _incident(msg: IntakeMessage, *, salt: str, now: dt.datetime, locator: Locator) -> Incident:
    match msg:
        case HotlineTicket():
            text = redact_text(msg.text, (msg.caller_name,))
            where = locator.resolve(lat=_lat(msg.location), lon=_lon(msg.location), street=msg.street,
                                    district=msg.district, address=msg.address, text=f"{msg.title} {text}")
            return Incident(
                incident_id=incident_id_of(msg),
                source="hotline", source_id=msg.ticket_no, reported_at=msg.received_at, normalized_at=now,
                title=redact_text(msg.title, (msg.caller_name,)), text=text, address=msg.address, location=msg.location,
                reporter_hash=hash_contact(msg.caller_phone, salt), category_hint=msg.category, **_where(where),
            )
        case GridReport():
            where = locator.resolve(lat=msg.location.lat, lon=msg.location.lon, grid_code=msg.grid_code)
            return Incident(
                incident_id=incident_id_of(msg),
                source="grid", source_id=msg.report_id, reported_at=msg.reported_at, normalized_at=now,
                text=redact_text(msg.text), location=msg.location, category_hint=msg.category, **_where(where),
            )
        case SensorReading():
            where = locator.resolve(lat=msg.location.lat, lon=msg.location.lon, grid_code=msg.grid_code)
            return Incident(
                incident_id=incident_id_of(msg),
                source="sensor", source_id=source_id(msg), reported_at=msg.measured_at, normalized_at=now,
                title=_SENSOR_TITLES[msg.kind], text=f"{_SENSOR_TITLES[msg.kind]}：{msg.value:g}{msg.unit}",
                location=msg.location, sensor_kind=msg.kind, sensor_value=msg.value, sensor_unit=msg.unit,
                **_where(where),
            )
        case Whistle():
            # The whistle is blown by a street; where it happened is that street unless GPS says more.
            where = locator.resolve(lat=_lat(msg.location), lon=_lon(msg.location), street=msg.unit)
            return Incident(
                incident_id=incident_id_of(msg),
                source="whistle", source_id=msg.whistle_id, reported_at=msg.blown_at, normalized_at=now,
                title="街乡吹哨", text=redact_text(msg.text), location=msg.location,
                whistle_unit=msg.unit, summoned_units=list(msg.summoned_units), **_where(where),
            )
    raise TypeError(f"not an intake message: {type(msg).__name__}")


def _where(location: Location) -> dict:
    return {"district": location.district, "street": location.street, "community": location.community,
            "grid_code": location.grid, "location_method": location.method, "location_problem": location.problem}


def _lat(point: GeoPoint | None) -> float | None:
    return point.lat if point else None


def _lon(point: GeoPoint | None) -> float | None:
    return point.lon if point else None
