"""Bounded memory: finished tasks, callers, cases and received ids leave the worker's tables after
the retention, while their history stays in ClickHouse — on a clock 7,200× faster, so a day of
retention passes in 12 s."""

from __future__ import annotations

import datetime as dt
import re

from devtools.processes import poll_until
from devtools.simulator import simulate_departments
from infra.kafka.feeder import feed
from pipeline.clock import Clock
from pipeline.loadgen import generate
from pipeline.retention import FINISHED
from schemas.topics import TopicNames

CITY_TZ = dt.timezone(dt.timedelta(hours=8))
MONDAY_MORNING = dt.datetime(2026, 12, 7, 9, tzinfo=CITY_TZ)


def test_finished_work_leaves_the_tables_and_its_history_stays(broker, pipeline_env, start_worker):
    clock = Clock(7200, dt.datetime.now(dt.timezone.utc), MONDAY_MORNING)
    env = {**pipeline_env, "CITYOPS_CLOCK_SCALE": "7200", "CITYOPS_CLOCK_ORIGIN": clock.origin.isoformat(),
           "CITYOPS_CLOCK_START": clock.start.isoformat(), "CITYOPS_SLA_CHECK_SECONDS": "0.5",
           "CITYOPS_RETENTION_HOURS": "24", "CITYOPS_RETENTION_CHECK_SECONDS": "1"}
    names = TopicNames(env["CITYOPS_TOPIC_PREFIX"])
    deployment = start_worker(env)
    events = list(generate(300, run_tag="retention", bad_fraction=0, start=clock.now()))
    assert feed(broker.bootstrap_servers, names, events) == len(events)
    landed = deployment.wait_until(lambda s: s["clickhouse_incidents"] >= len(events)
                                   and s["dispatched"] + s["manual"] + s["merged"] >= len(events), timeout=120)
    held = deployment.worker.health()["held"]
    assert held["received"] == len(events) and held["callers"] > 0 and held["cases"] > 0 and held["tasks"] > 0

    # Departments accept, finish, close; reporters score. About 3 working days pass in 40 s.
    simulate_departments(broker.bootstrap_servers, names, clock, [0.5, 1.0, 2.0], seconds=40)
    assert deployment.wait_settled(timeout=60)

    def finished_left() -> tuple[dict, dict]:
        return deployment.worker.health()["held"], deployment.stats()["tasks_by_status"]

    # A day after the last activity: every received id, caller and case key is gone; of the tasks,
    # exactly those not finished stay (finished ones leave a day after their last event).
    held, by_status = poll_until(
        finished_left, lambda got: got[0]["received"] == 0 and got[0]["callers"] == 0 and got[0]["cases"] == 0
        and got[0]["tasks"] == sum(n for status, n in got[1].items() if status not in FINISHED),
        timeout=90, what="the tables emptied of what has served its purpose")
    assert sum(n for status, n in by_status.items() if status in FINISHED) > 0
    metrics = deployment.metrics_text()
    for table in ("received", "callers", "cases", "tasks"):
        assert re.search(rf'cityops_table_entries_forgotten_total{{table="{table}"}} [1-9]', metrics), table

    # The history stays: every incident and task is still in ClickHouse.
    stats = deployment.stats()
    assert stats["clickhouse_incidents"] == landed["clickhouse_incidents"]
    assert sum(stats["tasks_by_status"].values()) >= landed["dispatched"]
