"""`cityops api`: the HTTP face (FastAPI), one router per audience. It puts what it accepts on the
topics the workers read (infra/api/publisher.py) and reads figures, tasks and the queue from
ClickHouse; on the embedded default it also owns the chDB directory and runs the sink.

- `/intake/…`: hotline vendors, grid apps, sensor gateways, street offices (infra/api/intake.py);
- `/health`: ready once the store is migrated and the sink reads (orchestrators, the demo, tests);
- `/stats/`: the figures screens poll, computed at most every `CITYOPS_STATS_REFRESH_SECONDS` in a
  worker thread and served from that snapshot — never a FINAL scan per request;
- `/departments/{unit}/tasks`, `/tasks/{id}/…`: departments and the operations centre act on tasks
  (infra/api/tasks.py); `/operator/queue`: the operator queue and its rulings (infra/api/operators.py);
  `/status/{ticket_no}`: a reporter's progress, without personal data (infra/api/status.py);
- `/sla/?by=…`: the SLA board; `/tasks/`: every unit's tasks, for `read` keys (screens, reporting);
- `/metrics`: this process's Prometheus metrics (requests, intake, the sink's);
- `/screen/`: the operations-centre wall screen (infra/api/screen.py).
Every request that reads citizens' data or changes anything needs an API key (infra/api/keys.py).
Errors are RFC 9457 problem documents (infra/api/problems.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time

from fastapi import Depends, FastAPI, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.topics import TopicNames
from infra.api import problems
from infra.api.auth import Gate, scoped
from infra.api.dutylist import CurrentDutyList
from infra.api.idempotency import Replays
from infra.api.intake import intake_router
from infra.api.keys import KeyRing
from infra.api.middleware import BodyLimit, RequestMetrics
from infra.api.open311 import open311_router
from infra.api.operators import operators_router
from infra.api.publisher import Publisher
from infra.api.screen import screen_router
from infra.api.status import status_router
from infra.api.tasks import tasks_router
from infra.settings import Settings
from infra.sink import Sink
from infra.store import SLA_DIMENSIONS, Store, within_store_range
from pipeline.dutylists import grids_file_of, load_dutybook

log = logging.getLogger(__name__)


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


def create_api(settings: Settings, store: Store, sink: Sink | None, publisher: Publisher | None = None) -> FastAPI:
    clock = settings.clock()
    now = clock.now
    names = TopicNames(settings.topic_prefix)
    figures = FiguresCache(store, settings.stats_refresh_seconds)
    publisher = publisher or Publisher(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(_run_loudly(sink)) if sink else None
        yield
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(publisher.close)

    app = FastAPI(title="cityops", summary="City operations centre: intake, dispatch by duty list, tasks, SLA.",
                  lifespan=lifespan, responses={401: problems.PROBLEM, 429: problems.PROBLEM})
    app.state.gate = Gate(KeyRing(settings.resolved_api_keys_file()), settings.api_rate_limit)
    app.state.publisher, app.state.replays = publisher, Replays()
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RequestMetrics)
    app.include_router(intake_router(names, clock))
    app.include_router(tasks_router(names, store, clock))
    app.include_router(operators_router(names, store, clock))
    bootstrap = load_dutybook(settings.dutylist_file, settings.units_file)
    dutylist = CurrentDutyList(store, bootstrap)
    unit_names = {code: unit.name for code, unit in bootstrap.units.items()}
    app.include_router(status_router(store, unit_names))
    app.include_router(open311_router(names, store, dutylist, clock, unit_names))
    app.include_router(screen_router(grids_file_of(settings.units_file)))
    reader = [Depends(scoped("read"))]

    @app.get("/health", tags=["operations"])
    async def health(response: Response) -> dict:
        ready = sink is None or sink.running
        response.status_code = 200 if ready else 503
        return {"ready": ready, "sink": None if sink is None else {"running": sink.running,
                                                                   "last_stored_at": sink.last_stored_at}}

    @app.get("/stats/", tags=["figures"])
    async def stats() -> dict:
        """Counts from ClickHouse (no personal data), at most `stats_refresh_seconds` old."""
        snapshot = await figures.get()
        return snapshot | {"figures_age_seconds": round(time.monotonic() - figures.computed_at, 3),
                           "now": now().isoformat()}

    @app.get("/sla/", tags=["figures"], responses={422: problems.PROBLEM})
    async def sla(by: str = Query("unit", description=" | ".join(SLA_DIMENSIONS)),
                  since: dt.datetime | None = Query(None, description="only tasks dispatched at or after this"),
                  until: dt.datetime | None = Query(None, description="only tasks dispatched before this"),
                  as_of: dt.datetime | None = Query(None, description="the instant the figures are as of "
                                                    "(default: now)")) -> dict:
        """The SLA board per `by` and in total (rates, counts, p50/p90 working hours), names beside codes."""
        if by not in SLA_DIMENSIONS:
            raise problems.Problem(422, "Invalid input", f"by must be one of {', '.join(SLA_DIMENSIONS)}",
                                   errors=[problems.FieldError(field="by", message="not a dimension")])
        window = [within_store_range(t) if t else None for t in (since, until, as_of)]
        board = await asyncio.to_thread(store.sla, by, window[2] or now(), window[0], window[1])
        names = unit_names if by in ("unit", "district", "street", "community") else (
            await asyncio.to_thread(dutylist.item_titles) if by == "item_no" else {})
        for row in board["rows"]:
            row["name"] = names.get(row["key"], row["key"])  # names beside the codes, for people
        return board

    @app.get("/overdue/", tags=["figures"])
    async def overdue(limit: int = Query(50, ge=1, le=500)) -> list[dict]:
        """Overdue tasks, longest first, with names: unit, item, street (no report text, no caller)."""
        rows = await asyncio.to_thread(store.overdue, now(), limit)
        items = await asyncio.to_thread(dutylist.item_titles)
        return [r | {"unit_name": unit_names.get(r["unit"], r["unit"]), "item_title": items.get(r["item_no"], ""),
                     "street_name": unit_names.get(r["street"] or "", r["street"] or "")} for r in rows]

    @app.get("/tasks/", tags=["figures"], dependencies=reader, responses={403: problems.PROBLEM})
    async def tasks(unit: str | None = None, status: str | None = Query(None, description="a status, or 'open'"),
                    limit: int = Query(1000, ge=1, le=10000)) -> list[dict]:
        return await asyncio.to_thread(store.tasks, unit, status, limit)

    @app.get("/metrics", tags=["operations"])
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _run_loudly(sink: Sink) -> None:
    """Without the sink nothing reaches ClickHouse: a failure stops the process, never silently."""
    try:
        await sink.run()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("the ClickHouse sink failed; stopping the api")
        logging.shutdown()
        os._exit(70)


def serve(settings: Settings) -> None:
    """Migrate the store, start the sink (when this process owns the store or is told to), serve."""
    import uvicorn

    store = Store(settings.resolved_clickhouse_url(), settings.clickhouse_database)
    store.migrate()
    sink = Sink(settings, store, settings.clock().now) if settings.kafka_bootstrap_servers else None
    if sink is None:
        log.warning("KAFKA_BOOTSTRAP_SERVERS unset: serving what the store holds, no sink, no intake")
    app = create_api(settings, store, sink)
    log.info("cityops api on http://%s:%d/ (API keys: %s)", settings.api_host, settings.api_port,
             settings.resolved_api_keys_file())
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning", access_log=False)
    finally:
        store.close()
