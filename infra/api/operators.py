"""The operator queue: what the pipeline could not route with confidence, and the operators' rulings.

    GET  /operator/queue?reason=&top_class=&district=&limit=&offset=     waiting incidents, oldest first
    GET  /operator/items                          the duty items in force, to dispatch under
    POST /operator/queue/{incident_id}/dispatch   {item_no, units?, note}   dispatch under a duty item
    POST /operator/queue/{incident_id}/close      {note}                    close without a dispatch
    GET  /operator/rulings?since=&until=&limit=   the rulings and returns, as examples for the next model

A ruling is an `OperatorDecision` on `manual-decisions`; the operator stage in the worker applies it
(a dispatch the duty list refuses, e.g. 摊派 to a street it does not name, comes back to the queue
with the reason). Answered 202 once the broker has it. The decision id is made of the incident and
the ruling, so a retried ruling is the same decision.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from infra.api.auth import scoped
from infra.api.dutylist import CurrentDutyList
from infra.api.keys import ApiKey
from infra.api.problems import PROBLEM, FieldError, Problem, invalid
from infra.store import Store
from infra.store.queries import within_store_range
from pipeline import ids
from pipeline.clock import Clock
from pipeline.pii import redact_text
from schemas import OperatorDecision
from schemas.fields import Code, FreeText
from schemas.topics import TopicNames

IncidentId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


class QueuePage(BaseModel):
    total: int = Field(description="waiting incidents that match the filters")
    items: list[dict]


class DispatchRuling(BaseModel):
    item_no: Code = Field(description="the duty item, e.g. CJ-050")
    units: list[Code] = Field(default_factory=list, max_length=10, description="empty: the units the item names; "
                              "else these, the first primary (streets the list does not name are refused: no 摊派)")
    note: FreeText = Field(default="", max_length=500)


class CloseRuling(BaseModel):
    reason: Literal["answered", "invalid", "duplicate"] = Field(
        description="answered on the call (咨询/直接答复), invalid (无效: not a matter for the city), or a duplicate "
        "of another ticket (重复)")
    note: FreeText = Field(min_length=1, max_length=500, description="what was answered, why invalid, which ticket it "
                      "repeats")


class RulingSent(BaseModel):
    decision_id: str
    incident_id: str
    action: str


class ItemChoice(BaseModel):
    number: str
    title: str
    top_class: str
    primary_unit: str
    primary_unit_name: str
    scope: str
    fallback: bool


def operators_router(names: TopicNames, store: Store, clock: Clock, dutylist: CurrentDutyList) -> APIRouter:
    router = APIRouter(prefix="/operator", tags=["operators"],
                       responses={403: PROBLEM, 404: PROBLEM, 413: PROBLEM, 422: PROBLEM, 503: PROBLEM})
    operator = Depends(scoped("operator"))

    @router.get("/queue", dependencies=[Depends(scoped("operator", "read"))])
    async def queue(reason: str | None = Query(None, max_length=100, description="a part of the reason"),
                    top_class: str | None = Query(None, max_length=64, description="class of the best candidate"),
                    district: str | None = Query(None, max_length=64),
                    limit: int = Query(50, ge=1, le=1000),
                    offset: int = Query(0, ge=0, le=1_000_000, description="skip this many"),
                    ) -> QueuePage:
        items, total = await asyncio.to_thread(store.queue, limit, offset, reason=reason, top_class=top_class,
                                               district=district)
        return QueuePage(total=total, items=items)

    @router.get("/items", dependencies=[Depends(scoped("operator", "read"))])
    async def items() -> list[ItemChoice]:
        """The city list's items in force (local lists' variants are applied by the worker per street)."""
        book = await asyncio.to_thread(dutylist.get)
        return [ItemChoice(number=i.number, title=i.title, top_class=i.category[0], primary_unit=i.primary_unit,
                           primary_unit_name=book.units[i.primary_unit].name if i.primary_unit in book.units
                           else i.primary_unit, scope=i.scope, fallback=i.fallback)
                for i in book.dutylist.items]

    @router.get("/rulings", dependencies=[Depends(scoped("operator", "read"))])
    async def rulings(since: dt.datetime | None = Query(None, description="decided at or after this ISO time"),
                      until: dt.datetime | None = Query(None, description="decided before this ISO time"),
                      limit: int = Query(10_000, ge=1, le=100_000)) -> list[dict]:
        """What the operations centre taught, oldest first: each operator dispatch (`dispatch`: the item is
        right for the text), close (`not_for_dispatch`) and department return as 职能不符 (`return`: the
        `wrong_unit` is wrong for the text; `item_no`/`units`: where it went next, once routed again), with
        the masked text and its SHA-256, the model whose decision came before, who decided and when."""
        return await asyncio.to_thread(store.rulings, within_store_range(since) if since else None,
                                       within_store_range(until) if until else None, limit)

    async def rule(request: Request, incident_id: str, key: ApiKey, action: str, **ruling) -> RulingSent:
        if not await asyncio.to_thread(store.waiting, incident_id):
            raise Problem(404, "Not Found", f"incident {incident_id} is not waiting for an operator (unknown, "
                          "already decided, or not yet stored: a new entry shows within a second or two)")
        decision = OperatorDecision(
            decision_id=ids.stable_id("decision", incident_id, action, *ruling.values()), incident_id=incident_id,
            action=action, operator=key.name, decided_at=clock.now(), **ruling)
        await request.app.state.publisher.publish(names.manual_decisions, incident_id,
                                                  decision.model_dump_json().encode())
        return RulingSent(decision_id=decision.decision_id, incident_id=incident_id, action=action)

    @router.post("/queue/{incident_id}/dispatch", status_code=202)
    async def dispatch(incident_id: IncidentId, body: DispatchRuling, request: Request,
                       key: ApiKey = operator) -> RulingSent:
        """Dispatch under a duty item. An item the list in force does not have, or a unit the registry does
        not know, is refused here (422); the worker still checks the street against the item (no 摊派)."""
        book = await asyncio.to_thread(dutylist.get)
        errors = [] if body.item_no in dutylist.item_titles() else [
            FieldError(field="body.item_no", message="not an item of the duty list in force (GET /operator/items)")]
        errors += [FieldError(field=f"body.units.{n}", message="not a unit of the city registry (GET /units/)")
                   for n, unit in enumerate(body.units) if unit not in book.units]
        if errors:
            raise invalid(errors, "the ruling")
        return await rule(request, incident_id, key, "dispatch", item_no=body.item_no, units=body.units,
                          note=redact_text(body.note))

    @router.post("/queue/{incident_id}/close", status_code=202)
    async def close(incident_id: IncidentId, body: CloseRuling, request: Request,
                    key: ApiKey = operator) -> RulingSent:
        """Close without a dispatch: it leaves the queue, the reporter's status says why."""
        return await rule(request, incident_id, key, "close", close_reason=body.reason, note=redact_text(body.note))

    return router
