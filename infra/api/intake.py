"""Intake over HTTP, for hotline vendors, grid-worker apps, sensor gateways and street offices: each
report is validated with the same models the workers read (schemas/intake.py), put on its intake topic
keyed by its own id, and answered once the broker has it — with the incident id it will have.

    POST /intake/hotline-tickets   one 12345 work order            201 receipt | 422 | 503
    POST /intake/grid-reports      one grid worker's report         201 receipt | 422 | 503
    POST /intake/sensor-readings   up to 1,000 readings             200, one result per reading | 503
    POST /intake/whistles          one 街乡吹哨                      201 receipt | 422 | 503

Every POST takes an `Idempotency-Key`; without one a retry is still harmless (the ticket number makes
the incident id, and every stage after this one de-duplicates on it).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra import metrics
from infra.api.auth import scoped
from infra.api.dutylist import CurrentDutyList
from infra.api.keys import ApiKey
from infra.api.problems import PROBLEM, FieldError, Problem, field_errors, invalid
from infra.api.publisher import Publisher
from infra.store import Store
from pipeline.clock import Clock
from pipeline.normalize import IntakeError, IntakeMessage, check_time, content_hash, incident_id_of, source_id
from schemas import GridReport, HotlineTicket, SensorReading, Whistle
from schemas.topics import TopicNames

MAX_READINGS = 1000


class IntakeReceipt(BaseModel):
    """The broker has the report; the workers will make it this incident."""

    accepted: bool = True
    incident_id: str
    source: str
    source_id: str = Field(description="the report's own id: ticket number, report id, sensor@time, whistle id")
    status_url: str | None = Field(default=None, description="hotline tickets: where the reporter's status is read")


class ReadingResult(BaseModel):
    index: int
    accepted: bool
    incident_id: str | None = None
    errors: list[FieldError] = Field(default_factory=list)


class SensorBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")  # as every intake model: an unknown field is refused
    # A reading that does not validate stays a plain object here, so the batch answers it by
    # itself instead of refusing every reading with it.
    readings: list[Annotated[SensorReading | dict[str, Any], Field(union_mode="left_to_right")]] = Field(
        min_length=1, max_length=MAX_READINGS)


class SensorBatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[ReadingResult]


# 409: a request with the same Idempotency-Key is still being processed.
ERRORS = {401: PROBLEM, 403: PROBLEM, 409: PROBLEM, 413: PROBLEM, 422: PROBLEM, 429: PROBLEM, 503: PROBLEM}
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255,
                                              description="retry with the same key: the first answer, nothing twice")]


def intake_router(names: TopicNames, clock: Clock, dutylist: CurrentDutyList, store: Store) -> APIRouter:
    router = APIRouter(prefix="/intake", tags=["intake"], responses=ERRORS)
    intake_key = Depends(scoped("intake"))

    async def check_at_the_door(message: IntakeMessage, at: str = "body.") -> None:
        """What the workers would refuse, refused here and now: a time out of range, a unit or grid the
        registry does not know (422), and a report id that came before with other content (409). A
        reuse the store does not hold yet (sent within the last second or two) is dead-lettered by the
        worker as a conflict instead."""
        try:
            check_time(message, clock.now())
        except IntakeError as exc:
            raise invalid([e.model_copy(update={"field": at + e.field}) for e in _errors_of(exc)], "the report") from None
        book = await asyncio.to_thread(dutylist.get)
        if unknown := book.registry_problems(message):
            raise invalid([FieldError(field=at + f, message=why) for f, why in unknown], "the report")
        if isinstance(message, SensorReading):  # its id is the sensor and the time: a reuse is the same reading
            return
        before = await asyncio.to_thread(store.content_hash, incident_id_of(message))
        if before is not None and before[0] and before[0] != content_hash(message):
            field = {"hotline": "ticket_no", "grid": "report_id", "whistle": "whistle_id"}[message.source]
            raise Problem(409, "Conflict", f"{field}: this id came before with other content (received "
                          f"{before[1].isoformat()}) and is never reused: send a correction as a new report",
                          errors=[FieldError(field=at + field, message="reused with other content")])

    async def once(request: Request, key: ApiKey, idempotency_key: str | None, run):
        fingerprint = hashlib.sha256(await request.body()).hexdigest()
        scope = (key.key_id, idempotency_key) if idempotency_key else None
        return await request.app.state.replays.answer(scope, fingerprint, run)

    def single(message: IntakeMessage, request: Request, key: ApiKey, idempotency_key: str | None):
        if message.submitted_by is not None:
            raise invalid([FieldError(field="submitted_by", message="set by the api: the key that sends the "
                                      "report")], "the report")
        message = message.model_copy(update={"submitted_by": key.key_id})

        async def run():
            await check_at_the_door(message)
            return 201, (await publish_report(request.app.state.publisher, names, message)).model_dump(mode="json")
        return once(request, key, idempotency_key, run)

    @router.post("/hotline-tickets", status_code=201, response_model=IntakeReceipt)
    async def hotline_ticket(ticket: HotlineTicket, request: Request, idempotency_key: IdempotencyKey = None,
                             key: ApiKey = intake_key):
        """A 12345 work order (工单). The caller's name and phone are accepted here and never stored in clear.
        `history` is refused: what became of an order is what the units do next, not what a client says
        (historical orders are imported with `cityops replay`)."""
        if ticket.history is not None:
            raise invalid([FieldError(field="history", message="set only by `cityops replay` (historical orders); "
                                      "a live ticket's outcome comes from the units")], "the report")
        return await single(ticket, request, key, idempotency_key)

    @router.post("/grid-reports", status_code=201, response_model=IntakeReceipt)
    async def grid_report(report: GridReport, request: Request, idempotency_key: IdempotencyKey = None,
                          key: ApiKey = intake_key):
        """A grid worker's (网格员) report: text, photo references, GPS and grid code."""
        return await single(report, request, key, idempotency_key)

    @router.post("/whistles", status_code=201, response_model=IntakeReceipt)
    async def whistle(whistle: Whistle, request: Request, idempotency_key: IdempotencyKey = None,
                      key: ApiKey = intake_key):
        """街乡吹哨: a street summons the departments it names."""
        return await single(whistle, request, key, idempotency_key)

    @router.post("/sensor-readings", response_model=SensorBatchResult)
    async def sensor_readings(batch: SensorBatch, request: Request, idempotency_key: IdempotencyKey = None,
                              key: ApiKey = intake_key):
        """Up to 1,000 readings; each is answered by its position. 503 when the broker did not
        acknowledge them all: send the batch again (readings already taken are not taken twice)."""
        async def run():
            results: list[ReadingResult | None] = [None] * len(batch.readings)
            valid = []
            for n, reading in enumerate(batch.readings):
                try:
                    reading = reading if isinstance(reading, SensorReading) else SensorReading.model_validate(reading)
                    if reading.submitted_by is not None:
                        raise IntakeError("submitted_by: set by the api: the key that sends the reading")
                    await check_at_the_door(reading, at="")
                    valid.append((n, reading.model_copy(update={"submitted_by": key.key_id})))
                except (ValidationError, IntakeError) as exc:
                    results[n] = ReadingResult(index=n, accepted=False, errors=_errors_of(exc))
                    metrics.API_INTAKE.labels("sensor", "rejected").inc()
                except Problem as refused:
                    results[n] = ReadingResult(index=n, accepted=False, errors=refused.body.errors)
                    metrics.API_INTAKE.labels("sensor", "rejected").inc()
            publisher = request.app.state.publisher
            receipts = await asyncio.gather(*(publish_report(publisher, names, reading) for _, reading in valid))
            for (n, _), receipt in zip(valid, receipts, strict=True):
                results[n] = ReadingResult(index=n, accepted=True, incident_id=receipt.incident_id)
            body = SensorBatchResult(accepted=len(valid), rejected=len(results) - len(valid), results=results)
            return 200, body.model_dump(mode="json")

        return await once(request, key, idempotency_key, run)

    return router


async def publish_report(publisher: Publisher, names: TopicNames, message: IntakeMessage) -> IntakeReceipt:
    """A valid report onto its intake topic, keyed by its own id; the receipt once the broker has it.
    The one way in over HTTP: the intake routes and Open311's POST requests both come here."""
    await publisher.publish(names.intake(message.source), source_id(message),
                            message.model_dump_json(exclude_none=True).encode())
    metrics.API_INTAKE.labels(message.source, "accepted").inc()
    return IntakeReceipt(incident_id=incident_id_of(message), source=message.source, source_id=source_id(message),
                         status_url=f"/status/{message.ticket_no}" if isinstance(message, HotlineTicket) else None)


def _errors_of(exc: ValidationError | IntakeError) -> list[FieldError]:
    if isinstance(exc, ValidationError):
        return field_errors(exc)
    field, _, why = str(exc).partition(": ")  # IntakeError texts start with the field they name
    return [FieldError(field=field, message=why)]
