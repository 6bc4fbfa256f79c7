"""What a reporter may know of a hotline ticket, for the hotline to tell them: received, dispatched to
which unit, accepted, finished (办结) with the result, closed, scored. No personal data: no caller, no
phone, no report text; the result text has names and numbers masked where it came in."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from infra.api.auth import scoped
from infra.api.problems import PROBLEM, Problem
from infra.store import Store

STAGES = {"dispatched": "已派单", "accepted": "已接单", "extension_pending": "已接单", "parked": "已挂账",
          "completed": "已办结", "verified": "已办结", "closed": "已结案", "evaluated": "已评价", "returned": "已退单"}
CLOSED_STAGES = {"answered": "已直接答复", "invalid": "无效工单", "duplicate": "重复工单"}
TicketNo = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")]


def status_router(store: Store, unit_names: dict[str, str]) -> APIRouter:
    router = APIRouter(tags=["reporters"], responses={403: PROBLEM, 404: PROBLEM, 422: PROBLEM})

    @router.get("/status/{ticket_no}", dependencies=[Depends(scoped("intake", "read", "operator"))])
    async def status(ticket_no: TicketNo) -> dict:
        """A ticket's progress: 已受理 → 已派单 → 已接单 → 已办结 → 已结案 → 已评价 (or 已退单, 已挂账; closed
        without a dispatch: 已直接答复, 无效工单, 重复工单)."""
        found = await asyncio.to_thread(store.hotline_tickets, [ticket_no], None, None, 1)
        if not found:
            raise Problem(404, "Not Found", f"no hotline ticket {ticket_no} (yet: a new ticket shows within a "
                          "second or two)")
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
        return progress | {"stage": stage}

    return router
