"""Open311 GeoReport v2 (http://wiki.open311.org/GeoReport_v2/), so that apps and tools written for
it work against a Chinese city's platform unchanged:

    GET  /open311/v2/services.json                 duty items as services, grouped by class
    GET  /open311/v2/services/{service_code}.json  one service's definition (no extra attributes)
    POST /open311/v2/requests.json                 a report: becomes a hotline ticket (channel "app")
    GET  /open311/v2/requests.json                 reports, with the spec's filters
    GET  /open311/v2/requests/{id}.json            one report

A service request id is the hotline ticket number. Status is `open` until the task is finished
(办结) or the operator closed it without a dispatch; `agency_responsible` is the primary unit,
`expected_datetime` the finish deadline on the SLA clock, `media_url` the first photo sent. Errors are
the spec's list of `{code, description}`, never repeating a value sent.

Reading needs no key, as the spec says ("api_key: not required"): without one a request shows its
public view — status, service, agency, times, the place to about 100 m, the description with
personal data masked, no address and no notes; with a key (`api_key`, the spec's parameter, or
`Authorization: Bearer`; scopes intake, read or operator) the address and the status notes too.
Posting a request needs an intake key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Header, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError

from infra.api.auth import bearer_token, public_client, require_scope
from infra.api.dutylist import CurrentDutyList
from infra.api.intake import publish_report
from infra.api.keys import ApiKey
from infra.api.problems import Problem, field_errors, invalid
from infra.store import Store
from infra.store.queries import within_store_range
from pipeline.clock import Clock
from schemas import GeoPoint, HotlineTicket
from schemas.fields import FreeText, OneLine
from schemas.topics import TopicNames

PREFIX = "/open311/v2"
FINISHED = ("completed", "verified", "closed", "evaluated")


class Open311Error(BaseModel):
    code: int
    description: str


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool = False
    type: str = "realtime"
    keywords: str
    group: str


class ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[dict] = Field(default_factory=list)


class RequestCreated(BaseModel):
    service_request_id: str
    service_notice: str = ""
    account_id: str | None = None


class ServiceRequest(BaseModel):
    service_request_id: str
    status: str = Field(description="open | closed")
    status_notes: str | None = None
    service_name: str | None = None
    service_code: str | None = None
    description: str | None = None
    agency_responsible: str | None = None
    service_notice: str | None = None
    requested_datetime: dt.datetime
    updated_datetime: dt.datetime | None = None
    expected_datetime: dt.datetime | None = None
    address: str | None = None
    address_id: str | None = None
    zipcode: str | None = None
    lat: float | None = None
    long: float | None = None
    media_url: str | None = None


ERRORS = {code: {"model": list[Open311Error]} for code in (400, 401, 403, 404, 413, 429, 503)}
ServiceCode = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")]
RequestId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")]


async def _token(request: Request, api_key: str | None, authorization: str | None) -> str | None:
    """The Authorization header, else the spec's `api_key` parameter (query or form)."""
    token = bearer_token(authorization) or api_key
    if token is None and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        token = (await request.form()).get("api_key")
    return str(token).strip() if token else None


API_KEY = Query(None, description="the API key (the spec's parameter)")
AUTHORIZATION = Header(None, description="or: Bearer <API key>")


def open311_key(*scopes: str):
    """A key holding one of `scopes` (posting a request)."""

    async def check(request: Request, api_key: str | None = API_KEY,
                    authorization: str | None = AUTHORIZATION) -> ApiKey:
        token = await _token(request, api_key, authorization)
        return require_scope(await request.app.state.gate.admit_request(request, token or ""), scopes)

    return check


async def open311_reader(request: Request, api_key: str | None = API_KEY,
                         authorization: str | None = AUTHORIZATION) -> ApiKey | None:
    """Reading: no key is the public view (rate-limited per client address); a key must be valid and
    hold intake, read or operator."""
    token = await _token(request, api_key, authorization)
    if token is None:
        request.app.state.gate.admit_public(request)
        return None
    return require_scope(await request.app.state.gate.admit_request(request, token), ("intake", "read", "operator"))


def _about_100_m(degrees: float | None) -> float | None:
    return None if degrees is None else round(degrees, 3)


def open311_router(names: TopicNames, store: Store, dutylist: CurrentDutyList, clock: Clock,
                   unit_names: dict[str, str]) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"], responses=ERRORS)
    reader = Depends(open311_reader)

    def services() -> list[Service]:
        return [Service(service_code=i.number, service_name=i.title, description=f"{'/'.join(i.category)}；"
                        f"{i.legal_basis}", keywords=",".join(i.keywords), group=i.category[0])
                for i in dutylist.get().items_for(None).values()]

    @router.get("/services.json", response_model=list[Service], dependencies=[Depends(public_client)])
    async def list_services(jurisdiction_id: str | None = Query(None, max_length=64)) -> list[Service]:
        """Duty items as services: what the city can be asked to do, by class."""
        return await asyncio.to_thread(services)

    @router.get("/services/{service_code}.json", response_model=ServiceDefinition,
                dependencies=[Depends(public_client)])
    async def service_definition(service_code: ServiceCode,
                                 jurisdiction_id: str | None = Query(None, max_length=64)) -> ServiceDefinition:
        item = (await asyncio.to_thread(dutylist.get)).item(service_code)
        if item is None:
            raise Problem(404, "Not Found", "service_code: no such service (services.json lists them)")
        return ServiceDefinition(service_code=item.number)

    @router.post("/requests.json", response_model=list[RequestCreated], status_code=201)
    async def create_request(
        request: Request,
        key: ApiKey = Depends(open311_key("intake")),
        service_code: str = Form(..., max_length=64),
        lat: float | None = Form(None), long: float | None = Form(None),
        address_string: OneLine | None = Form(None, max_length=500), address_id: str | None = Form(None, max_length=64),
        description: FreeText | None = Form(None, max_length=4000), media_url: str | None = Form(None, max_length=500),
        first_name: OneLine | None = Form(None, max_length=32), last_name: OneLine | None = Form(None, max_length=32),
        phone: str | None = Form(None, max_length=32), email: str | None = Form(None, max_length=200),
        device_id: str | None = Form(None, max_length=100), account_id: str | None = Form(None, max_length=100),
        jurisdiction_id: str | None = Form(None, max_length=64), api_key: str | None = Form(None, max_length=200),
    ) -> list[RequestCreated]:
        """A report from an Open311 app: one service (a duty item), a place, a description."""
        item = (await asyncio.to_thread(dutylist.get)).item(service_code)
        if item is None:
            raise Problem(400, "Bad Request", "service_code: no such service (services.json lists them)")
        if (lat is None or long is None) and not address_string:
            raise Problem(400, "Bad Request", "lat and long, or address_string: a request says where")
        try:
            ticket = HotlineTicket(
                ticket_no=f"O311-{uuid.uuid4().hex[:16]}", received_at=clock.now(), channel="app",
                caller_name=" ".join(filter(None, [last_name, first_name])) or None, caller_phone=phone or None,
                title=item.title, text=description or item.title, address=address_string,
                location=GeoPoint(lat=lat, lon=long) if lat is not None and long is not None else None,
                category=item.number, photo_urls=[media_url] if media_url else [], submitted_by=key.key_id)
        except ValidationError as exc:
            raise invalid(field_errors(exc), "the request") from None
        receipt = await publish_report(request.app.state.publisher, names, ticket)
        return [RequestCreated(service_request_id=ticket.ticket_no,
                               service_notice=f"incident {receipt.incident_id}: routed by the duty list")]

    def as_request(row: dict, key: ApiKey | None) -> ServiceRequest:
        """With a key, the request as the city holds it; without, its public view (module docstring)."""
        task, closed, result = row["task"], row["closed_without_dispatch"], row["result"]
        finished = closed is not None or (task is not None and task["status"] in FINISHED)
        notes = (closed or result or {}).get("note" if closed else "text") or (task["status"] if task else "received")
        return ServiceRequest(
            service_request_id=row["ticket_no"], status="closed" if finished else "open",
            status_notes=notes if key else None,
            service_code=task["item_no"] if task else row.get("category_hint"),
            service_name=row.get("item_title") or None, description=row["text"],
            agency_responsible=unit_names.get(task["unit"], task["unit"]) if task else None,
            requested_datetime=row["reported_at"], updated_datetime=task["last_event_at"] if task else None,
            expected_datetime=task["finish_by"] if task else None, address=row.get("address") if key else None,
            lat=row.get("lat") if key else _about_100_m(row.get("lat")),
            long=row.get("lon") if key else _about_100_m(row.get("lon")),
            media_url=(row.get("photo_urls") or [None])[0])

    @router.get("/requests.json", response_model=list[ServiceRequest])
    async def list_requests(
        service_request_id: str | None = Query(None, max_length=2000, description="comma-separated ids"),
        service_code: str | None = Query(None, max_length=64),
        start_date: dt.datetime | None = Query(None), end_date: dt.datetime | None = Query(None),
        status: str | None = Query(None, pattern=r"^(open|closed)(,(open|closed))?$"),
        jurisdiction_id: str | None = Query(None, max_length=64), key: ApiKey | None = reader,
    ) -> list[ServiceRequest]:
        """The spec's defaults: the last 90 days, at most 1,000, newest first."""
        end = within_store_range(end_date or clock.now())
        start = within_store_range(start_date or end - dt.timedelta(days=90))
        ids = [i.strip() for i in service_request_id.split(",") if i.strip()] if service_request_id else None
        rows = await asyncio.to_thread(store.hotline_tickets, ids, start, end, 1000)
        requests = [as_request(r, key) for r in rows]
        wanted = set(status.split(",")) if status else None
        return [r for r in requests if (wanted is None or r.status in wanted)
                and (service_code is None or r.service_code == service_code)]

    @router.get("/requests/{service_request_id}.json", response_model=list[ServiceRequest])
    async def get_request(service_request_id: RequestId, jurisdiction_id: str | None = Query(None, max_length=64),
                          key: ApiKey | None = reader) -> list[ServiceRequest]:
        rows = await asyncio.to_thread(store.hotline_tickets, [service_request_id], None, None, 1)
        if not rows:
            raise Problem(404, "Not Found", "no service request with that id (yet: a new request shows within a "
                          "second or two)")
        return [as_request(rows[0], key)]

    return router

