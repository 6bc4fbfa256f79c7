"""What a reporter may know of a hotline ticket: received, dispatched to which unit, accepted, finished
(办结) with the result, closed, scored. No personal data: no caller, no phone, no report text; the
result text has names and numbers masked where it came in.

    GET  /status/{ticket_no}   for the hotline to tell the caller (an intake, read or operator key)
    POST /status/lookup        the reporter's own page (/screen/status): the ticket number and the phone
                               the call came from, without a key, a few a minute per address
    POST /status/score         the reporter scores a closed ticket's result there (回访), once

The phone is never stored: it is hashed with the deployment's salt as at intake and compared with the
ticket's reporter hash. A wrong phone and an unknown ticket get the same answer, so the page tells a
stranger nothing about which numbers exist."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, Field

from infra.api.auth import reporter_lookup, scoped
from infra.api.problems import PROBLEM, Problem
from infra.api.tasks import ActionResult, TaskActor
from infra.store import Store
from pipeline.pii import hash_contact
from schemas.fields import Phone

STAGES = {"dispatched": "已派单", "accepted": "已接单", "extension_pending": "已接单", "parked": "已挂账",
          "completed": "已办结", "verified": "已办结", "closed": "已结案", "evaluated": "已评价", "returned": "已退单"}
CLOSED_STAGES = {"answered": "已直接答复", "invalid": "无效工单", "duplicate": "重复工单"}
TICKET_NO = r"^[A-Za-z0-9_\-.]+$"
TicketNo = Annotated[str, Path(min_length=1, max_length=64, pattern=TICKET_NO)]
NOT_FOUND = "no hotline ticket with this number and phone (a new ticket shows within a second or two)"


class Lookup(BaseModel):
    ticket_no: str = Field(min_length=1, max_length=64, pattern=TICKET_NO, description="the number the hotline gave")
    phone: Phone = Field(description="the phone the call came from (compared hashed, never stored)")


class ReporterScore(Lookup):
    score: int = Field(ge=1, le=3, description="1 不满意, 2 基本满意, 3 满意")


def status_router(store: Store, unit_names: dict[str, str], actor: TaskActor, salt: str) -> APIRouter:
    router = APIRouter(tags=["reporters"], responses={403: PROBLEM, 404: PROBLEM, 422: PROBLEM})

    async def progress_of(ticket_no: str) -> dict | None:
        found = await asyncio.to_thread(store.hotline_tickets, [ticket_no], None, None, 1)
        if not found:
            return None
        progress = {k: found[0][k] for k in ("ticket_no", "incident_id", "reported_at", "task", "item_title",
                                             "result", "closed_without_dispatch")}
        task = progress["task"]
        if progress["closed_without_dispatch"]:
            stage = CLOSED_STAGES.get(progress["closed_without_dispatch"]["reason"], "已办结")
        elif task is None:
            stage = "已受理"  # received; classified and waiting for dispatch or an operator
        else:
            stage = STAGES.get(task["status"], task["status"])
            task["unit_name"] = unit_names.get(task["unit"], task["unit"])
        return progress | {"stage": stage, "can_score": bool(task and task["status"] == "closed")}

    async def reporters_own(lookup: Lookup) -> dict:
        reporter = await asyncio.to_thread(store.ticket_reporter, lookup.ticket_no)
        progress = await progress_of(lookup.ticket_no) if reporter == hash_contact(lookup.phone, salt) else None
        if progress is None:
            raise Problem(404, "Not Found", NOT_FOUND)
        return progress

    @router.get("/status/{ticket_no}", dependencies=[Depends(scoped("intake", "read", "operator"))])
    async def status(ticket_no: TicketNo) -> dict:
        """A ticket's progress: 已受理 → 已派单 → 已接单 → 已办结 → 已结案 → 已评价 (or 已退单, 已挂账; closed
        without a dispatch: 已直接答复, 无效工单, 重复工单); `can_score`: closed, waiting for the reporter's score."""
        progress = await progress_of(ticket_no)
        if progress is None:
            raise Problem(404, "Not Found", f"no hotline ticket {ticket_no} (yet: a new ticket shows within a "
                          "second or two)")
        return progress

    @router.post("/status/lookup", dependencies=[Depends(reporter_lookup)], responses={429: PROBLEM})
    async def lookup(body: Lookup) -> dict:
        """The reporter's own lookup: the progress of the ticket, when the phone is the one it came from."""
        return await reporters_own(body)

    @router.post("/status/score", dependencies=[Depends(reporter_lookup)], responses={409: PROBLEM, 429: PROBLEM})
    async def reporter_score(body: ReporterScore, request: Request) -> ActionResult:
        """回访 by the reporter: the score of a closed ticket's result, once (the phone proves who asks)."""
        progress = await reporters_own(body)
        if not progress["task"]:
            raise Problem(409, "Conflict", "this ticket has no task to score (closed without a dispatch, or not "
                          "dispatched yet)")
        return await actor.act(request, progress["task"]["task_id"], "evaluated", note="", by="reporter",
                               score=body.score)

    return router
