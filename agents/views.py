"""The worker's own web port: `/health` for orchestrators and tests, `/metrics` for Prometheus.

Nothing here shows citizens' data: the queue, tasks and figures are read through `cityops api`.
"""

from __future__ import annotations

from collections.abc import Callable

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.dutylists import DutyLists
from agents.tasks import task_figures
from infra import metrics
from infra.kafka.brokerwatch import BrokerWatch


def add_views(app: faust.App, dutylists: DutyLists, ready: Callable[[], bool], tables: dict[str, faust.Table],
              task_summaries, now, watch: BrokerWatch, stages_running: Callable[[], dict[str, bool]]) -> None:
    @app.page("/health/")
    async def health(web, request):
        """Ready once the duty lists are read and the tables recovered (and not rebalancing) while the
        broker answers and every stage runs; the broker's last check (lag per stage, a lost log); the
        sizes of the tables this worker holds (its partitions). Cheap: polled by orchestrators and the demo."""
        model = dutylists.models.current
        return web.json({"ready": ready(), "dutylist_version": dutylists.current.version,
                         "model_version": model.version if model else None, "now": now().isoformat(),
                         "stages": stages_running(), "broker": watch.state.as_json(watch.stage_of),
                         "held": {name: len(table) for name, table in tables.items()},
                         "waiting_for_operator": len(tables["waiting_for_operator"])},
                        status=200 if ready() else 503)

    @app.page("/metrics/")
    async def metrics_view(web, request):
        # Derived when scraped: a list published ahead of its date comes into force with no event.
        metrics.set_dutylist_version(dutylists.current.version)
        held = task_figures(task_summaries(), now())
        metrics.TASKS.clear()
        for status, n in held["by_status"].items():
            metrics.TASKS.labels(status).set(n)
        metrics.TASKS_OVERDUE.clear()
        for (unit, limit), n in held["overdue"].items():
            metrics.TASKS_OVERDUE.labels(unit, limit).set(n)
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])
