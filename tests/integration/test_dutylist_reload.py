"""Duty lists switch without a restart, and operators decide the manual queue — on the real broker."""

from __future__ import annotations

import datetime as dt
import json
import time

from infra.kafka.feeder import publish
from infra.settings import Settings
from infra.store import Store
from pipeline import ids
from pipeline.dutylists import sample_path
from pipeline.route import MIN_CONFIDENCE
from schemas import DutyListVersion, OperatorDecision
from schemas.topics import TopicNames

CN = dt.timezone(dt.timedelta(hours=8))


def ticket(no: str, title: str, text: str, address: str) -> bytes:
    # A caller of their own per ticket: the same caller repeating the same text would merge into the first case.
    return json.dumps({"ticket_no": no, "received_at": dt.datetime.now(CN).isoformat(), "title": title, "text": text,
                       "address": address, "caller_phone": f"1380000{int(no[-1]):04d}"}, ensure_ascii=False).encode()


def send_ticket(broker, names: TopicNames, no: str, title: str, text: str, address: str = "A7县星沙街道") -> str:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    producer.send(names.intake("hotline"), key=no.encode(), value=ticket(no, title, text, address)).get(timeout=30)
    producer.close()
    return ids.incident_id("hotline", no)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def test_publish_switches_the_list_without_restart_and_operators_decide(broker, pipeline_env, start_worker, tmp_path):
    prefix = pipeline_env["CITYOPS_TOPIC_PREFIX"]
    names = TopicNames(prefix)
    # Keywords alone (no text model): the ticket below that names no duty item then surely waits for
    # an operator, where a confident model would send it to its class's general item.
    worker = start_worker(pipeline_env | {"CITYOPS_MODEL_DIR": str(tmp_path / "no-model")})
    pid = worker.process.pid
    assert worker.stats()["dutylist_version"] == "A市-2026.2"

    before = send_ticket(broker, names, f"{prefix}1", "路灯不亮", "主干道路灯坏了一个星期")
    worker.wait_until(lambda s: s["dispatched"] >= 1, timeout=60)

    # A new version: street lighting moves to the power company.
    v3 = sample_path("dutylist.yaml").read_text(encoding="utf-8").replace('version: "A市-2026.2"', 'version: "A市-2026.3"')
    v3 = v3.replace("grid_classes: [部件/公用设施/路灯], primary_unit: cgj,", "grid_classes: [部件/公用设施/路灯], primary_unit: gdgs,")
    publish(Settings(kafka_bootstrap_servers=broker.bootstrap_servers), names.dutylists, "A市-2026.3",
            DutyListVersion(version="A市-2026.3", published_at=now(), published_by="test", yaml=v3))
    worker.wait_until(lambda s: s["dutylist_version"] == "A市-2026.3", timeout=30)

    # A broken version is refused (dead-lettered with the reason); the good one stays in force.
    broken = v3.replace('version: "A市-2026.3"', 'version: "A市-2026.4"').replace("primary_unit: gdgs,", "primary_unit: nobody,")
    publish(Settings(kafka_bootstrap_servers=broker.bootstrap_servers), names.dutylists, "A市-2026.4",
            DutyListVersion(version="A市-2026.4", published_at=now(), published_by="test", yaml=broken))
    # Another street: the same text from the same street would merge into the first case.
    after = send_ticket(broker, names, f"{prefix}2", "路灯不亮", "主干道路灯坏了一个星期", address="A7县泉塘街道")
    worker.wait_until(lambda s: s["dispatched"] >= 2 and s["deadlettered"] >= 1, timeout=60)
    assert worker.stats()["dutylist_version"] == "A市-2026.3"

    # Nothing in the list matches: the operator queue. A ruling that pushes a department's item
    # down to the street is refused; a ruling under a territorial item goes to the street.
    unmatched = send_ticket(broker, names, f"{prefix}3", "咨询", "请问这件事情应该找哪个单位反映")
    # The queue is the worker's; /operator/queue reads ClickHouse, a sink batch behind: wait for both.
    worker.wait_until(lambda s: s["waiting_for_operator"] == 1 and s["manual"] >= 1, timeout=60)
    queue = worker.get_json("/operator/queue")["items"]
    assert [(q["incident_id"], q["street"], q["reason"].split(" (")[0]) for q in queue] == [
        (unmatched, "a7-s02", "no duty-list keyword in the text")]
    for item, units in (("CJ-003", ["a7-s02"]), ("CJ-050", [])):
        publish(Settings(kafka_bootstrap_servers=broker.bootstrap_servers), names.manual_decisions, unmatched,
                OperatorDecision(decision_id=f"{prefix}{item}", incident_id=unmatched, item_no=item, units=units,
                                 operator="op7", decided_at=now()))
    worker.wait_until(lambda s: s["waiting_for_operator"] == 0 and s["dispatched"] >= 3 and s["tanpai_refused"] == 1,
                      timeout=60)
    assert worker.process.pid == pid and worker.process.poll() is None  # no restart at any point
    metrics = worker.metrics_text()
    worker.stop()

    with Store(pipeline_env["CLICKHOUSE_URL"]) as store:
        rows = store.query("SELECT incident_id, unit, item_no, dutylist_version, local_list FROM {db}.dispatches FINAL "
                           "WHERE role = 'primary'")
        letters = store.query("SELECT stage, reason FROM {db}.dead_letters FINAL")
        versions = store.query("SELECT version, published_by FROM {db}.dutylist_versions FINAL ORDER BY version")
        decisions = store.query("SELECT item_no, operator FROM {db}.operator_decisions FINAL ORDER BY item_no")
    primary = {r[0]: r[1:] for r in rows}
    assert primary[before] == ("cgj", "CJ-029", "A市-2026.2", "a7")
    assert primary[after] == ("gdgs", "CJ-029", "A市-2026.3", "a7-s01")
    assert primary[unmatched] == ("a7-s02", "CJ-050", "A市-2026.3", "a7")
    assert [(stage, "unknown unit 'nobody'" in reason) for stage, reason in letters] == [("dutylist", True)]
    assert versions == [("A市-2026.3", "test"), ("A市-2026.4", "test")]  # audit keeps the refused one too
    assert decisions == [("CJ-003", "op7"), ("CJ-050", "op7")]
    assert 'cityops_dutylist_info{version="A市-2026.3"} 1.0' in metrics
    assert 'cityops_manual_reviews_total{tanpai_refused="true"} 1.0' in metrics


def test_a_ruling_delivered_again_is_applied_once_and_not_dead_lettered(broker, pipeline_env, start_worker, tmp_path):
    """A worker killed after a ruling took its incident out of the queue and before the ruling's offset
    was committed gets the ruling again. It was dead-lettered as "not waiting"; had the dispatch not
    reached the broker, the incident was lost. Now the dispatch reaches the broker before the entry
    leaves, and the same ruling again is recognised and absorbed."""
    from prometheus_client.parser import text_string_to_metric_families

    prefix = pipeline_env["CITYOPS_TOPIC_PREFIX"]
    names = TopicNames(prefix)
    # Keywords alone at the shipped threshold: both tickets wait for an operator.
    worker = start_worker(pipeline_env | {"CITYOPS_MODEL_DIR": str(tmp_path / "no-model"),
                                          "CITYOPS_CLASSIFY_THRESHOLD": str(MIN_CONFIDENCE)})
    dispatched = send_ticket(broker, names, f"{prefix}1", "咨询", "请问这件事情应该找哪个单位反映")
    closed = send_ticket(broker, names, f"{prefix}2", "咨询", "请问办理居住证需要哪些材料", address="A7县泉塘街道")
    worker.wait_until(lambda s: s["waiting_for_operator"] == 2, timeout=60)
    rulings = [OperatorDecision(decision_id=f"{prefix}d", incident_id=dispatched, item_no="CJ-050", operator="op7",
                                decided_at=now()),
               OperatorDecision(decision_id=f"{prefix}c", incident_id=closed, action="close", close_reason="answered",
                                note="电话中已答复", operator="op7", decided_at=now())]
    for ruling in rulings * 2:  # the second time: redelivered
        publish(Settings(kafka_bootstrap_servers=broker.bootstrap_servers), names.manual_decisions,
                ruling.incident_id, ruling)

    def operator_counts() -> dict[str, float]:
        return {sample.name: sample.value for family in text_string_to_metric_families(worker.metrics_text())
                for sample in family.samples if sample.labels.get("stage") == "operator"
                and sample.name in ("cityops_stage_out_total", "cityops_stage_failed_total")}

    deadline = time.monotonic() + 60
    while sum(operator_counts().values()) < 4 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert operator_counts() == {"cityops_stage_out_total": 4.0}  # all four taken, none dead-lettered
    stats = worker.wait_until(lambda s: s["dispatched"] >= 1, timeout=60)
    assert stats["waiting_for_operator"] == 0
    worker.stop()  # chDB: one process per directory
    with Store(pipeline_env["CLICKHOUSE_URL"]) as store:
        tasks = store.query("SELECT incident_id, count() FROM {db}.tasks FINAL GROUP BY incident_id")
    assert tasks == [(dispatched, 1)]
