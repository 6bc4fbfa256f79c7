"""The figures screens and reports read: counts, the SLA board, scores, the overdue list.

None of these carry citizens' data (no text, no caller), so the screen reads them without a key;
`/tasks/` lists every unit's tasks and needs a `read` key. Names stand beside codes for people.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import time
from collections.abc import Callable

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from infra.api import problems
from infra.api.auth import public_client, scoped
from infra.api.dutylist import CurrentDutyList
from infra.bulletin import MEDIA_TYPES, DocumentUnavailable, render_bulletin
from infra.store import Store
from infra.store.queries import SLA_ALIASES, SLA_DIMENSIONS, TREND_FIGURES, within_store_range
from pipeline.bulletin import HEAT, HEAT_EN, MONTH_PATTERN, MonthReport, month_window, recurring_problems
from pipeline.dutylists import CITY_TZ, DutyBook
from pipeline.scores import score, sources_needed
from schemas.scores import ScoreSchemes

SOURCE_NAMES = {"hotline": "12345热线", "grid": "网格上报", "sensor": "物联感知", "whistle": "街乡吹哨"}
PUBLIC = [Depends(public_client)]  # no key needed: rate-limited per client address
TERRITORIAL = ("unit", "district", "street", "community")
TREND_LONGEST = {"hour": dt.timedelta(days=31), "day": dt.timedelta(days=3 * 366)}


def every_bucket(rows: list[dict], bucket: str, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """The trend's rows with the empty hours or days (city time) filled with zeros, oldest first."""
    step = dt.timedelta(hours=1) if bucket == "hour" else dt.timedelta(days=1)
    local = start.astimezone(CITY_TZ)
    at = local.replace(minute=0, second=0, microsecond=0, **({} if bucket == "hour" else {"hour": 0}))
    found = {dt.datetime.fromisoformat(r["at"]): r for r in rows}
    filled = []
    while at < end:
        filled.append(found.get(at) or {"at": at.astimezone(dt.timezone.utc).isoformat(), **dict.fromkeys(TREND_FIGURES, 0)})
        at += step
    return filled


class FiguresCache:
    """The latest `store.stats()`, recomputed when older than `max_age` by whichever request finds it
    stale (one at a time; the others get the snapshot they find)."""

    def __init__(self, store: Store, max_age: float):
        self.store, self.max_age = store, max_age
        self.figures: dict | None = None
        self.computed_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> dict:
        if self.figures is None or time.monotonic() - self.computed_at > self.max_age:
            async with self._lock:
                if self.figures is None or time.monotonic() - self.computed_at > self.max_age:
                    started = time.monotonic()
                    self.figures = await asyncio.to_thread(self.store.stats)
                    self.computed_at = started
        return self.figures


class Names:
    """Code → name for every SLA dimension: units and places from the registry, items from the duty
    list in force, grids by their community, sources by what the centre calls them."""

    def __init__(self, book: DutyBook, dutylist: CurrentDutyList):
        self.unit_records = book.units
        self.units = {code: unit.name for code, unit in book.units.items()}
        self.grids = {g.code: f"{self.units.get(g.community, g.community)} {g.code[-3:]}号网格"
                      for g in book.registry.grids}
        self.dutylist = dutylist

    def of(self, by: str) -> dict[str, str]:
        if by in TERRITORIAL:
            return self.units
        if by == "item_no":
            return self.dutylist.item_titles()
        return {"grid_code": self.grids, "source": SOURCE_NAMES}.get(by, {})


def _dimension(by: str) -> str:
    by = SLA_ALIASES.get(by, by)
    if by not in SLA_DIMENSIONS:
        raise problems.Problem(422, "Invalid input", f"by must be one of {', '.join(SLA_DIMENSIONS)} "
                               f"(or {', '.join(SLA_ALIASES)})",
                               errors=[problems.FieldError(field="by", message="not a dimension")])
    return by


BY = Query("unit", description=" | ".join((*SLA_DIMENSIONS, *SLA_ALIASES)))
SINCE = Query(None, description="only tasks dispatched at or after this")
UNTIL = Query(None, description="only tasks dispatched before this")
AS_OF = Query(None, description="the instant the figures are as of (default: now)")


def figures_router(store: Store, names: Names, schemes: ScoreSchemes, now: Callable[[], dt.datetime],
                   stats_max_age: float, sink_behind: Callable[[], float] | None = None) -> APIRouter:
    """`sink_behind`: seconds since this process's sink last had all it read stored (None: another
    process writes the store, and the figures' age is the snapshot's)."""
    router = APIRouter(tags=["figures"], responses={422: problems.PROBLEM})
    figures = FiguresCache(store, stats_max_age)

    def board(by: str, since, until, as_of, source: str | None = None, quantiles: bool = True) -> dict:
        window = [within_store_range(t) if t else None for t in (since, until, as_of)]
        result = store.sla(by, window[2] or now(), window[0], window[1], source=source, quantiles=quantiles)
        named = names.of(by)
        for row in result["rows"]:
            row["name"] = named.get(row["key"], row["key"])
        return result

    def scored(chosen: str, by: str, since, until, as_of, board_of: Callable[..., dict] = board) -> dict:
        """A scheme's scores by unit or street (what /scores/ answers); `board_of`: where the boards come
        from (the bulletin passes a memo: its schemes share them)."""
        plan = schemes.schemes[chosen]
        # The all-tasks board (None) always: its rows are the units or streets scored.
        boards = {source: {r["key"]: r for r in board_of(by, since, until, as_of, source)["rows"]}
                  for source in {None, *sources_needed(plan)}}
        rows = score(plan, boards)
        for row in rows:
            row["name"] = names.units.get(row["key"], row["key"])
        return {"scheme": chosen, "title": plan.title, "title_en": plan.title_en, "about": plan.about,
                "about_en": plan.about_en, "min_tasks": plan.min_tasks, "by": by, "rows": rows,
                "schemes": {k: {"title": s.title, "title_en": s.title_en} for k, s in schemes.schemes.items()}}

    @router.get("/stats/", dependencies=PUBLIC)
    async def stats() -> dict:
        """Counts from ClickHouse (no personal data). `figures_age_seconds`: how old what they count is —
        the snapshot's age (at most `stats_refresh_seconds`) plus how far the store was behind the
        stream when it was taken (growing while the sink waits on a batch)."""
        snapshot = await figures.get()
        age = time.monotonic() - figures.computed_at
        if sink_behind is not None:
            age = max(age, sink_behind())
        return snapshot | {"figures_age_seconds": round(age, 3),
                           "now": now().isoformat(), "timezone": str(CITY_TZ)}

    @router.get("/sla/", dependencies=PUBLIC)
    async def sla(by: str = BY, since: dt.datetime | None = SINCE, until: dt.datetime | None = UNTIL,
                  as_of: dt.datetime | None = AS_OF,
                  source: str | None = Query(None, description=" | ".join(SOURCE_NAMES)),
                  quantiles: bool = Query(True, description="false: the p50/p90 hours left out (null) — the "
                                          "whole history's board is then several times cheaper (the screen's map)"),
                  ) -> dict:
        """The SLA board per `by` and in total (rates, counts, p50/p90 working hours), names beside codes."""
        if source is not None and source not in SOURCE_NAMES:
            raise problems.Problem(422, "Invalid input", f"source must be one of {', '.join(SOURCE_NAMES)}",
                                   errors=[problems.FieldError(field="source", message="not an intake source")])
        return await asyncio.to_thread(board, _dimension(by), since, until, as_of, source, quantiles)

    @router.get("/scores/", dependencies=PUBLIC)
    async def scores(scheme: str | None = Query(None, description="a scheme of the city's scores file "
                                                "(default: its default)"),
                     by: str = Query("unit", description="unit | street"),
                     since: dt.datetime | None = SINCE, until: dt.datetime | None = UNTIL,
                     as_of: dt.datetime | None = AS_OF) -> dict:
        """Department or street scores (考核) by a weighting scheme, ranked; each term's rate shown."""
        chosen = scheme or schemes.default
        if chosen not in schemes.schemes:
            raise problems.Problem(422, "Invalid input", f"scheme must be one of {', '.join(schemes.schemes)}",
                                   errors=[problems.FieldError(field="scheme", message="no such scheme")])
        if by not in ("unit", "street"):
            raise problems.Problem(422, "Invalid input", "by must be unit or street",
                                   errors=[problems.FieldError(field="by", message="not unit or street")])
        return await asyncio.to_thread(scored, chosen, by, since, until, as_of)

    def with_names(rows: list[dict]) -> list[dict]:
        items = names.dutylist.item_titles()
        return [r | {"unit_name": names.units.get(r["unit"], r["unit"]), "item_title": items.get(r["item_no"], ""),
                     "street_name": names.units.get(r["street"] or "", r["street"] or "")} for r in rows]

    @router.get("/overdue/", dependencies=PUBLIC)
    async def overdue(limit: int = Query(50, ge=1, le=500),
                      prewarned: bool = Query(False, description="also the tasks past their pre-warning")) -> list[dict]:
        """Overdue tasks, longest first (then, with `prewarned`, those nearly due), with names: unit,
        item, street (no report text, no caller)."""
        return with_names(await asyncio.to_thread(store.overdue, now(), limit, prewarned=prewarned))

    @router.get("/grids/{grid_code}/tasks", dependencies=PUBLIC)
    async def grid_tasks(grid_code: str = Path(pattern=r"^\d{15}$"),
                         limit: int = Query(100, ge=1, le=500)) -> list[dict]:
        """A grid's open tasks, the longest overdue first (the map's drill-down; no text, no caller)."""
        return with_names(await asyncio.to_thread(store.grid_tasks, grid_code, now(), limit))

    @router.get("/timeline/{task_id}", dependencies=PUBLIC, responses={404: problems.PROBLEM})
    async def timeline(task_id: str = Path(min_length=1, max_length=100)) -> dict:
        """A task's life in order (dispatch, acceptance, returns, alerts, completion, evaluation), with
        names; no free text (notes and results may name a citizen)."""
        events = await asyncio.to_thread(store.timeline, task_id)
        if not events:
            raise problems.Problem(404, "Not Found", "no task has that id")
        for event in events:
            event["unit_name"] = names.units.get(event["unit"], event["unit"])
        return {"task_id": task_id, "events": events}

    @router.get("/trends/", dependencies=PUBLIC)
    async def trends(bucket: str = Query("hour", pattern="^(hour|day)$"),
                     since: dt.datetime | None = Query(None, description="default: 48 hours or 30 days back"),
                     until: dt.datetime | None = Query(None, description="default: now")) -> dict:
        """Reports received, tasks dispatched, closed and closed on time per hour or day (city time)."""
        end = within_store_range(until or now())
        start = within_store_range(since or end - (dt.timedelta(hours=48) if bucket == "hour" else dt.timedelta(days=30)))
        longest = TREND_LONGEST[bucket]
        if end - start > longest:  # one row per bucket: a window of centuries by the hour is millions of rows
            raise problems.Problem(422, "Invalid input", f"{'an hourly' if bucket == 'hour' else 'a daily'} trend covers at most {longest.days} days",
                                   errors=[problems.FieldError(field="since", message="too far before until")])
        rows = await asyncio.to_thread(store.trend, bucket, start, end, str(CITY_TZ))
        return {"bucket": bucket, "since": start.isoformat(), "until": end.isoformat(),
                "rows": every_bucket(rows, bucket, start, end)}

    def monthly_bulletin(month: str) -> dict:
        """The month's bulletin (月度通报): the figures of the tasks dispatched in the month, as of its end
        (or now, during the month), beside the month before's; the most overdue work; 每月一题."""
        since, until, before = month_window(month)
        as_of = min(until, now())
        # Every scheme scores over the same boards (per dimension, window and source): each is read once.
        memo = functools.cache(board)
        boards = {by: memo(by, since, until, as_of, None) for by in ("unit", "street")}
        earlier = {by: memo(by, before, since, since, None) for by in ("unit", "street")}
        rankings = []
        for chosen in schemes.schemes:
            for by in ("unit", "street"):
                this = scored(chosen, by, since, until, as_of, memo)
                last = scored(chosen, by, before, since, since, memo)
                previous = {r["key"]: r for r in last["rows"]}
                for row in this["rows"]:
                    row["before"] = {k: previous.get(row["key"], {}).get(k) for k in ("rank", "score")}
                rankings.append(this)
        accuracy = store.dispatch_accuracy("unit", since, until)
        for row in accuracy["rows"]:
            row["name"] = names.units.get(row["key"], row["key"])
        reports, earlier_reports = (
            [MonthReport(**r) for r in store.month_reports(a, b)] for a, b in ((since, until), (before, since)))
        items = names.dutylist.item_titles()
        problems_found = []
        for problem in recurring_problems(reports, earlier_reports):
            found = dataclasses.asdict(problem)
            found["items"] = [{"item_no": k, "title": items.get(k, ""), "reports": n} for k, n in problem.items]
            found["places"] = [{"code": k, "name": names.units.get(k, k), "reports": n} for k, n in problem.places]
            found["units"] = [{"code": k, "name": names.units.get(k, k), "reports": n} for k, n in problem.units]
            problems_found.append(found)
        return {"month": month, "since": since.isoformat(), "until": until.isoformat(), "as_of": as_of.isoformat(),
                "month_before": before.strftime("%Y-%m"), "total": boards["unit"]["total"],
                "total_before": earlier["unit"]["total"], "units": boards["unit"]["rows"],
                "streets": boards["street"]["rows"], "rankings": rankings, "dispatch_accuracy": accuracy,
                "late_tasks": with_names(store.late_tasks(since, until, as_of)),
                "reports": len(reports), "reports_before": len(earlier_reports),
                "heat": {"zh": HEAT, "en": HEAT_EN}, "problems": problems_found}

    @router.get("/reports/bulletin", tags=["reports"], responses={401: problems.PROBLEM, 403: problems.PROBLEM},
                dependencies=[Depends(scoped("read", "operator"))])
    async def bulletin(month: str = Query(pattern=MONTH_PATTERN, description="YYYY-MM, city time (1970–2199)"),
                       format: str = Query("json", pattern="^(json|html|xlsx|pdf)$")) -> Response:
        """The monthly bulletin (月度通报) of the tasks dispatched in the month: the three rates and on-time
        closure per unit and street beside the month before, the ranking under each score scheme with the
        month before's rank, returns and re-dispatches per unit, the most overdue work, and 每月一题 (the
        month's recurring problems by a stated heat index, with masked examples). JSON, or a document:
        html, xlsx, pdf (the pdf needs Chromium)."""
        data = await asyncio.to_thread(monthly_bulletin, month)
        if format == "json":
            return JSONResponse(data)
        try:
            body = await asyncio.to_thread(render_bulletin, data, format)
        except DocumentUnavailable as exc:
            raise problems.Problem(503, "Service Unavailable", str(exc)) from None
        return Response(body, media_type=MEDIA_TYPES[format],
                        headers={"Content-Disposition": f'attachment; filename="bulletin-{month}.{format}"'})

    @router.get("/dispatch-accuracy/", dependencies=PUBLIC)
    async def dispatch_accuracy(by: str = Query("unit", pattern="^(unit|item_no)$"),
                                since: dt.datetime | None = SINCE) -> dict:
        """退单率 and re-dispatch rate per unit or item: the production measure of dispatch accuracy (first
        routings' primary tasks, returned as 职能不符 / 属地不符 / other, incidents routed again), names beside codes."""
        result = await asyncio.to_thread(store.dispatch_accuracy, by, within_store_range(since) if since else None)
        named = names.of(by)
        for row in result["rows"]:
            row["name"] = named.get(row["key"], row["key"])
        return result

    @router.get("/units/", dependencies=PUBLIC)
    async def units() -> list[dict]:
        """The registry's units (departments, districts, streets, communities): code, name, kind, parent."""
        return [{"code": u.code, "name": u.name, "kind": u.kind, "parent": u.parent} for u in names.unit_records.values()]

    @router.get("/tasks/", dependencies=[Depends(scoped("read"))], responses={403: problems.PROBLEM})
    async def tasks(unit: str | None = None, status: str | None = Query(None, description="a status, or 'open'"),
                    limit: int = Query(1000, ge=1, le=10000)) -> list[dict]:
        """Every unit's tasks (screens, reporting): a `read` key."""
        return await asyncio.to_thread(store.tasks, unit, status, limit)

    return router
