"""`cityops api`: the HTTP face (FastAPI), one router per audience. It puts what it accepts on the
topics the workers read (infra/api/publisher.py) and reads figures, tasks and the queue from
ClickHouse; on the embedded default it also owns the chDB directory and runs the sink.

- `/intake/…`: hotline vendors, grid apps, sensor gateways, street offices (infra/api/intake.py);
- `/health`: ready once the store is migrated and the sink reads (orchestrators, the demo, tests);
- `/stats/`: the counts screens poll, computed at most every `CITYOPS_STATS_REFRESH_SECONDS` in a
  worker thread and served from that snapshot — never a FINAL scan per request;
- `/departments/{unit}/tasks`, `/tasks/{id}/…`: departments and the operations centre act on tasks
  (infra/api/tasks.py); `/operator/queue`: the operator queue and its rulings (infra/api/operators.py);
  `/status/{ticket_no}`: a reporter's progress, without personal data (infra/api/status.py);
- `/sla/?by=…`, `/scores/`, `/overdue/`, `/tasks/`: the figures screens and reports read (infra/api/figures.py);
- `/metrics`: this process's Prometheus metrics (requests, intake, the sink's);
- `/screen/`: the operations-centre wall screen (infra/api/screen.py).
Every request that reads citizens' data or changes anything needs an API key (infra/api/keys.py).
Errors are RFC 9457 problem documents (infra/api/problems.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from fastapi import Depends, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from infra.api import problems
from infra.api.auth import Gate, current_key, public_client
from infra.api.dutylist import CurrentDutyList
from infra.api.figures import Names, figures_router
from infra.api.idempotency import Replays
from infra.api.intake import intake_router
from infra.api.keys import KeyRing
from infra.api.middleware import BodyLimit, HeadAsGet, RequestMetrics, SecurityHeaders
from infra.api.model import model_router
from infra.api.open311 import open311_router
from infra.api.operators import operators_router
from infra.api.publisher import Publisher
from infra.api.screen import screen_router
from infra.api.status import status_router
from infra.api.tasks import TaskActor, tasks_router
from infra.settings import Settings
from infra.sink import Sink
from infra.store import Store
from pipeline.dutylists import grids_file_of, load_dutybook
from pipeline.scores import load_schemes
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


def create_api(settings: Settings, store: Store, sink: Sink | None, publisher: Publisher | None = None) -> FastAPI:
    clock = settings.clock()
    now = clock.now
    names = TopicNames(settings.topic_prefix)
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
    app.state.gate = Gate(KeyRing(settings.resolved_api_keys_file()), settings.api_rate_limit,
                          settings.api_public_rate_limit, settings.api_lookup_rate_limit)
    app.state.publisher, app.state.replays = publisher, Replays()
    problems.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RequestMetrics)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HeadAsGet)
    bootstrap = load_dutybook(settings.dutylist_file, settings.units_file)
    dutylist = CurrentDutyList(store, bootstrap)
    app.include_router(intake_router(names, clock, dutylist, store))
    named = Names(bootstrap, dutylist)
    actor = TaskActor(names, store, clock)
    app.include_router(tasks_router(actor, store, clock, named))
    app.include_router(operators_router(names, store, clock, dutylist))
    app.include_router(status_router(store, named.units, actor, settings.pii_salt.get_secret_value()))
    app.include_router(open311_router(names, store, dutylist, clock, named.units))
    app.include_router(figures_router(store, named, load_schemes(settings.scores_file), now,
                                      settings.stats_refresh_seconds, sink.behind_seconds if sink else None))
    app.include_router(model_router(settings, store, now))
    app.include_router(screen_router(grids_file_of(settings.units_file)))

    @app.get("/health", tags=["operations"])
    async def health(response: Response) -> dict:
        """Ready while the sink reads and stores: not ready before it starts, nor while a batch it read has
        waited for the store longer than `sink_stall_seconds`. The sink's broker as its last check saw
        it (reachable, records not yet stored, a lost log: infra/kafka/brokerwatch.py)."""
        ready = sink is None or (sink.running and not sink.stalled())
        response.status_code = 200 if ready else 503
        return {"ready": ready, "sink": None if sink is None else {
            "running": sink.running, "stalled": sink.stalled(), "behind_seconds": round(sink.behind_seconds(), 3),
            "last_stored_at": sink.last_stored_at, "broker": sink.watch.state.as_json(sink.watch.stage_of)}}

    if settings.api_metrics != "off":
        @app.get("/metrics", tags=["operations"],
                 dependencies=[Depends(public_client if settings.api_metrics == "public" else current_key)])
        async def metrics() -> Response:
            """This process's Prometheus metrics: any valid key (`CITYOPS_API_METRICS`: key, public, off)."""
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
