"""`cityops api`: the HTTP face (FastAPI). Figures, the SLA board, tasks and the operator queue,
read from ClickHouse; on the embedded default it also owns the chDB directory and runs the sink.

- `/health`: ready once the store is migrated and the sink reads (orchestrators, the demo, tests);
- `/stats/`: the figures screens poll, computed at most every `CITYOPS_STATS_REFRESH_SECONDS` in a
  worker thread and served from that snapshot — never a FINAL scan per request;
- `/sla/?by=…`: the SLA board; `/tasks/?unit=&status=` and `/queue/`: citizens' reports, so they
  need the read key (`Authorization: Bearer …`);
- `/metrics`: this process's Prometheus metrics (the sink's).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import time
from pathlib import Path

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra.settings import Settings
from infra.sink import Sink
from infra.store import SLA_DIMENSIONS, Store

log = logging.getLogger(__name__)


def read_key(settings: Settings) -> str:
    """The key that reads citizens' data: CITYOPS_API_READ_KEY, else one made on first start and kept
    in `<data_dir>/api-read-key` (readable by the owner only)."""
    if settings.api_read_key is not None:
        return settings.api_read_key.get_secret_value()
    path = key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(24))
        log.info("made a read key for the API in %s", path)
    return path.read_text().strip()


def key_file(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "api-read-key"


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


def create_api(settings: Settings, store: Store, sink: Sink | None) -> FastAPI:
    now = settings.clock().now
    figures = FiguresCache(store, settings.stats_refresh_seconds)
    key = read_key(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(_run_loudly(sink)) if sink else None
        yield
        if task:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    app = FastAPI(title="cityops", summary="City operations centre: incidents, dispatches, tasks, SLA figures.",
                  lifespan=lifespan)

    def citizens_data(authorization: str | None = Header(default=None, description="Bearer <read key>")) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), key.encode()):
            raise HTTPException(401, "this reads citizens' reports: send Authorization: Bearer <read key>",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.get("/health")
    async def health(response: Response) -> dict:
        ready = sink is None or sink.running
        response.status_code = 200 if ready else 503
        return {"ready": ready, "sink": None if sink is None else {"running": sink.running,
                                                                   "last_stored_at": sink.last_stored_at}}

    @app.get("/stats/")
    async def stats() -> dict:
        """Counts from ClickHouse (no personal data), at most `stats_refresh_seconds` old."""
        snapshot = await figures.get()
        return snapshot | {"figures_age_seconds": round(time.monotonic() - figures.computed_at, 3),
                           "now": now().isoformat()}

    @app.get("/sla/")
    async def sla(by: str = Query("unit", description=" | ".join(SLA_DIMENSIONS))) -> dict:
        if by not in SLA_DIMENSIONS:
            raise HTTPException(400, f"by must be one of {', '.join(SLA_DIMENSIONS)}")
        return await asyncio.to_thread(store.sla, by, now())

    @app.get("/tasks/", dependencies=[Depends(citizens_data)])
    async def tasks(unit: str | None = None, status: str | None = Query(None, description="a status, or 'open'"),
                    limit: int = Query(1000, ge=1, le=10000)) -> list[dict]:
        return await asyncio.to_thread(store.tasks, unit, status, limit)

    @app.get("/queue/", dependencies=[Depends(citizens_data)])
    async def queue(limit: int = Query(500, ge=1, le=10000)) -> list[dict]:
        return await asyncio.to_thread(store.queue, limit)

    @app.get("/metrics")
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
        log.warning("KAFKA_BOOTSTRAP_SERVERS unset: serving what the store holds, no sink")
    app = create_api(settings, store, sink)
    log.info("cityops api on http://%s:%d/ (read key: %s)", settings.api_host, settings.api_port,
             "CITYOPS_API_READ_KEY" if settings.api_read_key else key_file(settings))
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning", access_log=False)
    finally:
        store.close()
