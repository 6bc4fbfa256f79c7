"""Intake message (any source) → one `Incident`."""

from __future__ import annotations

import datetime as dt
import hashlib
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


# A report's own time must be a real one: not before the city's oldest records (history replays
# go back years) and not in the future beyond clock skew. Years 1 or 9999 once crashed the dispatcher.
EARLIEST_REPORT = dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc)
MAX_CLOCK_SKEW = dt.timedelta(hours=24)
TIME_FIELDS = {"hotline": "received_at", "grid": "reported_at", "sensor": "measured_at", "whistle": "blown_at"}


def check_time(msg: IntakeMessage, now: dt.datetime, *, earliest: dt.datetime = EARLIEST_REPORT,
               skew: dt.timedelta = MAX_CLOCK_SKEW) -> None:
    """IntakeError naming the time field when the report's time is outside [earliest, now + skew]."""
    field = TIME_FIELDS[msg.source]
    at = getattr(msg, field)
    if at < earliest:
        raise IntakeError(f"{field}: before {earliest.date().isoformat()}, earlier than any record the city keeps")
    if at > now + skew:
        raise IntakeError(f"{field}: more than {skew.total_seconds() / 3600:g} h in the future")


def parse_intake(source: str, raw: bytes) -> IntakeMessage:
    try:
        payload = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntakeError(f"not JSON: {exc}") from None
    except RecursionError:
        raise IntakeError("not JSON this service reads: nested too deeply") from None
    return validate_intake(source, payload)


def validate_intake(source: str, payload: object) -> IntakeMessage:
    """A decoded message as the report of `source` it must be, or IntakeError naming the fields."""
    model = INTAKE_MODELS[source]
    if isinstance(payload, dict):
        # The topic decides the source; a message claiming another is misrouted. (The reason names
        # the topic's source, never what the message says: that is whatever a client typed.)
        if payload.get("source", source) != source:
            raise IntakeError(f"source: not {source!r}, the source of the intake topic it arrived on")
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


def content_fingerprint(msg: IntakeMessage) -> dict[str, str]:
    """A short hash of each field as the sender set it: a message with the id of one received before
    is compared on these (a redelivery matches; a reused id with other content does not; which key sent it
    is not content). Hashes,
    never values, so what is kept to compare holds no citizen's data."""
    return {name: hashlib.blake2b(json.dumps(value, sort_keys=True, ensure_ascii=False).encode(),
                                  digest_size=6).hexdigest()
            for name, value in msg.model_dump(mode="json", exclude={"submitted_by"}).items()}


def content_hash(msg: IntakeMessage) -> str:
    """One hash of the whole report as the sender set it (its fingerprint's): stored with the incident,
    so that the api can tell a retry from a reused id with other content."""
    return hashlib.sha256(json.dumps(content_fingerprint(msg), sort_keys=True).encode()).hexdigest()[:32]


def conflicting_fields(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The fields whose content differs between two fingerprints (empty: the same message)."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def to_incident(msg: IntakeMessage, *, salt: str, now: dt.datetime, locator: Locator,
                dutylist_version: str | None = None) -> Incident:
    """The incident for `msg`, located, stamped with the duty-list version in force now."""
    check_time(msg, now)
    return _incident(msg, salt=salt, now=now, locator=locator).model_copy(
        update={"dutylist_version": dutylist_version, "submitted_by": msg.submitted_by,
                "content_hash": content_hash(msg)})


def _incident(msg: IntakeMessage, *, salt: str, now: dt.datetime, locator: Locator) -> Incident:
    match msg:
        case HotlineTicket():
            text = redact_text(msg.text, (msg.caller_name,))
            where = locator.resolve(lat=_lat(msg.location), lon=_lon(msg.location), street=msg.street,
                                    district=msg.district, address=msg.address, text=f"{msg.title} {text}")
            return Incident(
                incident_id=incident_id_of(msg),
                source="hotline", source_id=msg.ticket_no, reported_at=msg.received_at, normalized_at=now,
                title=redact_text(msg.title, (msg.caller_name,)), text=text,
                address=redact_text(msg.address, (msg.caller_name,)) if msg.address else msg.address, location=msg.location,
                reporter_hash=hash_contact(msg.caller_phone, salt), category_hint=msg.category, history=msg.history,
                photo_urls=[str(url) for url in msg.photo_urls],
                **_where(where),
            )
        case GridReport():
            where = locator.resolve(lat=msg.location.lat, lon=msg.location.lon, grid_code=msg.grid_code)
            return Incident(
                incident_id=incident_id_of(msg),
                source="grid", source_id=msg.report_id, reported_at=msg.reported_at, normalized_at=now,
                text=redact_text(msg.text), location=msg.location, category_hint=msg.category,
                photo_urls=[str(url) for url in msg.photo_urls], **_where(where),
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
