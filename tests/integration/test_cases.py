"""Reports of one problem merge into one case, and enough of them raise a hotspot — on the real broker,
exactly once across a SIGKILL."""

from __future__ import annotations

import datetime as dt
import json

import shapely
from kafka import KafkaProducer

from infra.store import Store
from pipeline import ids
from pipeline.dutylists import load_registry
from schemas.topics import TopicNames

CN = dt.timezone(dt.timedelta(hours=8))


def grid_report(n: int, prefix: str, grid: str, lat: float, lon: float) -> bytes:
    return json.dumps({"report_id": f"{prefix}g{n}", "worker_id": f"w{n}", "grid_code": grid,
                       "reported_at": (dt.datetime(2026, 11, 2, 9, 0, tzinfo=CN) + dt.timedelta(minutes=n)).isoformat(),
                       "text": "窨井井盖缺失，存在安全隐患", "location": {"lat": lat, "lon": lon}, "category": "井盖"},
                      ensure_ascii=False).encode()


def test_repeated_reports_merge_into_one_case_and_raise_one_hotspot(broker, pipeline_env, start_worker):
    env = pipeline_env | {"CITYOPS_HOTSPOT_THRESHOLD": "3"}
    names = TopicNames(env["CITYOPS_TOPIC_PREFIX"])
    grid = load_registry().grids[100]
    centre = shapely.Polygon(grid.polygon).centroid
    worker = start_worker(env)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    for n in range(4):  # four workers, a few metres apart, the same missing manhole cover
        producer.send(names.intake("grid"), key=f"g{n}".encode(),
                      value=grid_report(n, names.prefix, grid.code, centre.y + n * 5e-5, centre.x)).get(timeout=30)
    first_two_landed = worker.wait_until(lambda s: s["dispatched"] + s["merged"] >= 4 and s["hotspots"] >= 1, timeout=90)
    worker.kill()  # the case state must survive in its table
    worker = start_worker(env)
    producer.send(names.intake("grid"), key=b"g4", value=grid_report(4, names.prefix, grid.code, centre.y, centre.x)).get(timeout=30)
    producer.close()
    stats = worker.wait_until(lambda s: s["merged"] >= 4, timeout=90)
    assert (first_two_landed["dispatched"], stats["dispatched"], stats["hotspots"]) == (1, 1, 1)
    worker.stop()

    with Store(env["CLICKHOUSE_URL"]) as store:
        merged = store.query("SELECT incident_id, task_id FROM {db}.task_events FINAL WHERE kind = 'merged'")
        primary = store.query("SELECT incident_id, dispatch_id FROM {db}.dispatches FINAL WHERE role = 'primary'")
        alerts = store.query("SELECT item_no, place, reports FROM {db}.alerts FINAL")
    # Whichever report the case stage saw first opened the case (the intake partitions race);
    # the four others joined its task.
    reports = {ids.incident_id("grid", f"{names.prefix}g{n}") for n in range(5)}
    (opener, task), = primary
    assert {i for i, _ in merged} == reports - {opener}
    assert {t for _, t in merged} == {task}
    assert alerts == [("CJ-030", grid.code, 3)]


def hotline_ticket(no: str, text: str, address: str, phone: str) -> bytes:
    return json.dumps({"ticket_no": no, "received_at": dt.datetime.now(CN).isoformat(), "title": text[:12],
                       "text": text, "address": address, "caller_phone": phone}, ensure_ascii=False).encode()


def test_a_caller_repeating_a_report_joins_its_case_or_is_named_in_the_operator_queue(broker, pipeline_env,
                                                                                        start_worker):
    names = TopicNames(pipeline_env["CITYOPS_TOPIC_PREFIX"])
    worker = start_worker(pipeline_env)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")

    def send(no: str, text: str, address: str) -> str:
        producer.send(names.intake("hotline"), key=no.encode(),
                      value=hotline_ticket(f"{names.prefix}{no}", text, address, "13900001234")).get(timeout=30)
        return ids.incident_id("hotline", f"{names.prefix}{no}")

    lamp = "主干道路灯坏了一个星期，晚上出行很不安全"
    first = send("t1", lamp, "A7县星沙街道")
    worker.wait_until(lambda s: s["dispatched"] >= 1, timeout=90)
    # The same caller, the same words, another street: its own case key, yet the same problem.
    again = send("t2", lamp, "A7县泉塘街道")
    unclear = send("t3", "请问这件事情应该找哪个单位反映，已经很久了", "A7县星沙街道")
    worker.wait_until(lambda s: s["waiting_for_operator"] >= 1, timeout=90)
    unclear_again = send("t4", "请问这件事情应该找哪个单位反映，已经很久了", "A7县星沙街道")
    producer.close()
    # The queue is the worker's; the counts are ClickHouse's, a sink batch behind: wait for both.
    stats = worker.wait_until(lambda s: s["merged"] >= 1 and s["waiting_for_operator"] >= 2 and s["manual"] >= 2,
                              timeout=90)
    assert (stats["dispatched"], stats["manual"]) == (1, 2)
    worker.stop()

    with Store(pipeline_env["CLICKHOUSE_URL"]) as store:
        merged = store.query("SELECT incident_id, note FROM {db}.task_events FINAL WHERE kind = 'merged'")
        primary = store.query("SELECT incident_id FROM {db}.dispatches FINAL WHERE role = 'primary'")
        reviews = dict(store.query("SELECT incident_id, reason FROM {db}.manual_reviews FINAL"))
    assert primary == [(first,)]
    assert [(i, "repeat call" in note) for i, note in merged] == [(again, True)]
    assert f"repeats incident {unclear}" not in reviews[unclear]
    assert reviews[unclear_again].endswith(f"repeats incident {unclear} (same caller, near-identical text)")
