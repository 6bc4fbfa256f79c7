"""The task stage on the real broker: departments' events move tasks, the SLA timer raises each alert
once, signed webhooks are retried, a return is re-routed, and neither a SIGKILL nor a restart loses
or repeats anything. The worker runs a scaled clock (1 real second = 10 minutes, from a Monday 09:00)
so the 2-working-hour accept limit passes in 12 seconds."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kafka import KafkaProducer

from infra.kafka.broker import free_port
from infra.store import Store
from infra.webhooks import ALERT_ID_HEADER, verify
from pipeline import ids
from pipeline.clock import Clock
from pipeline.sla import alert_key
from schemas import TaskEvent
from schemas.batches import messages_of
from schemas.topics import TopicNames

CN = dt.timezone(dt.timedelta(hours=8))
SECRET = "test-webhook-secret"


class Receiver:
    """A unit's webhook endpoint: refuses each alert's first delivery (503), then verifies the signature."""

    def __init__(self):
        self.calls: list[tuple[str, bool, int]] = []  # (alert id, signature valid, status answered)
        self.alerts: dict[str, dict] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                alert_id = self.headers[ALERT_ID_HEADER]
                valid = verify(SECRET.encode(), dict(self.headers), body)
                seen = any(a == alert_id for a, _, _ in receiver.calls)
                status = 401 if not valid else (200 if seen else 503)
                receiver.calls.append((alert_id, valid, status))
                if status == 200:
                    receiver.alerts[alert_id] = json.loads(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def ticket(no: str, title: str, text: str, address: str, at: dt.datetime) -> bytes:
    return json.dumps({"ticket_no": no, "received_at": at.isoformat(), "title": title, "text": text,
                       "address": address, "caller_phone": "13800138000"}, ensure_ascii=False).encode()


def tasks_of(deployment) -> dict[str, dict]:
    """The tasks as the api lists them (from ClickHouse, with the read key)."""
    return {t["task_id"]: t for t in deployment.get_json("/tasks/")}


def wait_for(predicate, worker, timeout: float = 90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = predicate(tasks_of(worker))
            if found:
                return found
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"tasks never matched; last: {tasks_of(worker)}\n{worker.log_tail()}")


def test_tasks_move_alert_once_reroute_and_survive_sigkill_and_restart(broker, pipeline_env, start_worker, receiver,
                                                                      tmp_path, monkeypatch):
    webhooks = tmp_path / "webhooks.yaml"
    webhooks.write_text(f'units:\n  cgj: {{url: "{receiver.url}", secret_env: CGJ_SECRET}}\n', encoding="utf-8")
    origin = dt.datetime.now(dt.timezone.utc)
    env = pipeline_env | {
        "CITYOPS_CLOCK_SCALE": "600", "CITYOPS_CLOCK_ORIGIN": origin.isoformat(),
        "CITYOPS_CLOCK_START": "2026-11-30T09:00:00+08:00", "CITYOPS_SLA_CHECK_SECONDS": "0.5",
        "CITYOPS_WEBHOOKS_FILE": str(webhooks), "CGJ_SECRET": SECRET,
    }
    clock = Clock(600, origin, dt.datetime(2026, 11, 30, 9, 0, tzinfo=CN))
    names = TopicNames(env["CITYOPS_TOPIC_PREFIX"])
    prefix = names.prefix
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")

    def send(*events: TaskEvent) -> None:
        for e in events:
            producer.send(names.task_events, key=e.task_id.encode(), value=e.model_dump_json().encode()).get(timeout=30)

    def event(task: dict, n: int, kind: str, **extra) -> TaskEvent:
        return TaskEvent(event_id=f"{task['task_id']}-{n}", task_id=task["task_id"], incident_id=task["incident_id"],
                         unit=task["unit"], kind=kind, at=clock.now(), by="test", **extra)

    worker = start_worker(env)
    tickets = {  # three streets, so the case stage does not merge them
        "late": ("路灯不亮", "主干道路灯坏了一个星期没人修", "A1区马王堆街道"),
        "loop": ("路灯不亮", "小区门口的路灯晚上不亮", "A7县泉塘街道"),
        "wrong": ("树枝挡住路灯", "行道树树枝倒伏，挡住路灯，晚上路灯不亮", "A3区望月湖街道"),
    }
    for name, (title, text, address) in tickets.items():
        producer.send(names.intake("hotline"), key=name.encode(),
                      value=ticket(f"{prefix}{name}", title, text, address, clock.now())).get(timeout=30)
    by_ticket = wait_for(lambda ts: _by_ticket(ts, prefix) if len(_by_ticket(ts, prefix)) == 3 else None, worker)
    late, loop, wrong = by_ticket["late"], by_ticket["loop"], by_ticket["wrong"]
    assert late["status"] == loop["status"] == wrong["status"] == "dispatched"

    # The closed loop, with a redelivered event and one the state machine refuses.
    send(event(loop, 1, "accepted"))
    wait_for(lambda ts: ts[loop["task_id"]]["status"] == "accepted", worker)
    send(event(loop, 1, "accepted"),  # redelivered: a no-op
         event(late, 1, "evaluated", score=3),  # refused: not closed yet
         event(loop, 2, "completed", result="已更换灯泡", photos=["https://img.example/1.jpg"]),
         event(loop, 3, "verified", note="网格员现场核查通过"), event(loop, 4, "closed"), event(loop, 5, "evaluated", score=3),
         event(wrong, 1, "returned", reason="职能不符", note="树木归园林部门"))
    worker.kill()  # SIGKILL mid-stream: the events are on the topic, maybe half applied

    worker = start_worker(env)
    after_kill = wait_for(lambda ts: ts if ts[loop["task_id"]]["status"] == "evaluated"
                          and ts[wrong["task_id"]]["status"] == "returned"
                          and any(k.startswith("accept:overdue@") for k in ts[late["task_id"]]["alerts_raised"]) else None,
                          worker, timeout=120)
    assert after_kill[loop["task_id"]]["version"] == 6  # dispatched + 5 events, the redelivery not counted
    assert after_kill[loop["task_id"]]["score"] == 3 and after_kill[loop["task_id"]]["accept_working_hours"] < 2
    assert [k.split("@")[0] for k in after_kill[late["task_id"]]["alerts_raised"]] == ["accept:prewarning",
                                                                                       "accept:overdue"]
    # The timer proposing again what the stage has applied (as it does when a busy stream has not
    # applied it within 30 s): the worker that raised the alert sends it no second time.
    proposal = read_until(broker, names.task_events, 1, lambda e: e if e["task_id"] == late["task_id"]
                          and e["kind"] == "overdue" else None)[0]
    overdue_alert = ids.stable_id("sla-alert", late["task_id"], alert_key(TaskEvent.model_validate(proposal)))
    sent_before = Counter(json.loads(v)["alert_id"] for v in _read_all(broker.bootstrap_servers, names.alerts))

    def its_updates(count: int) -> int:
        return len(read_until(broker, names.task_updates, count, lambda u: u["event"]["event_id"]
                              if u["event"]["event_id"] == proposal["event_id"] else None))

    updates = its_updates(0)
    producer.send(names.task_events, key=late["task_id"].encode(), value=json.dumps(proposal).encode()).get(timeout=30)
    assert its_updates(updates + 1) == updates + 1  # seen again, found applied: its update sent again
    sent_after = Counter(json.loads(v)["alert_id"] for v in _read_all(broker.bootstrap_servers, names.alerts))
    assert sent_before[overdue_alert] >= 1 and sent_after[overdue_alert] == sent_before[overdue_alert]

    rerouted = [t for t in after_kill.values() if t["incident_id"] == wrong["incident_id"] and t["attempt"] == 1]
    stats = worker.wait_until(lambda s: s["webhook_attempts"] >= 4 and (rerouted or s["manual"] >= 1), timeout=60)
    time.sleep(3)  # six timer periods: nothing more may be raised

    # A clean restart: the tables come back from their changelogs and no alert is raised again.
    alerts_before = stats["alerts"]
    worker.stop()
    worker = start_worker(env)
    time.sleep(3)
    after_restart = tasks_of(worker)
    # The scaled clock runs on (ten minutes a second), so new deadlines may pass meanwhile; what was
    # there must be there unchanged, and alerts only added.
    moving = {"alerts_raised", "version", "last_event_at"}
    for task_id, task in after_kill.items():
        assert {k: v for k, v in after_restart[task_id].items() if k not in moving} == \
               {k: v for k, v in task.items() if k not in moving}
        assert after_restart[task_id]["alerts_raised"][:len(task["alerts_raised"])] == task["alerts_raised"]
    assert all(worker.stats()["alerts"].get(kind, 0) >= n for kind, n in alerts_before.items())

    # The operations centre's board, through the CLI, from the api that owns the store.
    from typer.testing import CliRunner

    from cityops.cli import cli

    url = worker.api.url
    def report(by: str) -> list[dict]:
        return json.loads(CliRunner().invoke(cli, ["report", "sla", "--by", by, "--json", "--api", url]).stdout)

    [total] = report("total")
    assert total["tasks"] == len(after_restart) and total["closed"] >= 1
    assert next(r for r in report("unit") if r["key"] == "cgj")["satisfaction_rate"] == 1.0  # the loop scored 3
    refused = CliRunner().invoke(cli, ["report", "sla", "--by", "caller_phone", "--api", url])
    assert refused.exit_code == 2 and "by must be one of" in refused.output

    worker.stop()

    with Store(env["CLICKHOUSE_URL"]) as store:
        stored = {r[0]: r[1:] for r in store.query(
            "SELECT task_id, status, version, alerts_raised FROM {db}.tasks FINAL")}
        events_per_task = dict(store.query("SELECT task_id, count() FROM {db}.task_events FINAL GROUP BY task_id"))
        alerts = store.query("SELECT kind, task_id, to_unit, `limit` FROM {db}.alerts FINAL ORDER BY raised_at")
        attempts = store.query("SELECT alert_id, attempt, status, delivered FROM {db}.webhook_attempts FINAL "
                               "ORDER BY alert_id, attempt")
        dead = store.query("SELECT stage, reason FROM {db}.dead_letters FINAL WHERE stage = 'tasks'")
        reroutes = store.query("SELECT unit, item_no FROM {db}.dispatches FINAL WHERE attempt = 1")
        requeued = store.query("SELECT reason FROM {db}.manual_reviews FINAL WHERE attempt = 1")
    producer.close()

    # No alert was raised twice, across the SIGKILL and the restart. An SLA event applied before the
    # SIGKILL and read again after it sends its alert again under the same id (the first send may have
    # died with the process: webhooks are at least once, de-duplicated on the alert id); nothing else
    # does (a running worker never sends an alert id twice), and the receiver gets no more copies.
    on_topic = [json.loads(v) for v in _read_all(broker.bootstrap_servers, names.alerts)]
    alert_ids = Counter(a["alert_id"] for a in on_topic)
    # One alert id per fact (a task's limit passing, its pre-warning): a second id for the same fact
    # is an alert raised twice, whatever the copies of each id.
    per_fact = Counter((a["task_id"], a["kind"], a["limit"], a["due_at"]) for a in {a["alert_id"]: a for a in on_topic}.values())
    assert per_fact and max(per_fact.values()) == 1, per_fact
    delivered = Counter(a for a, _, status in receiver.calls if status == 200)
    assert all(n <= alert_ids[a] for a, n in delivered.items())

    # The task table equals the history: every applied event stored once, nothing more.
    for task_id, task in after_restart.items():
        assert stored[task_id] == (task["status"], task["version"], task["alerts_raised"])
        assert events_per_task[task_id] == task["version"]
    assert [(k, t, u, limit) for k, t, u, limit in alerts if t == late["task_id"]] == [
        ("prewarning", late["task_id"], "cgj", "accept"), ("overdue", late["task_id"], "cgj", "accept")]
    assert dead == [("tasks", f"task {late['task_id']}: evaluated is not possible when the task is dispatched")]
    # Each alert to cgj: refused once (503), delivered on the retry with a valid signature (one sent
    # again is delivered at its first try, the receiver having seen it).
    cgj_alerts = {a for a, *_ in attempts}
    assert cgj_alerts and all([(n, s, d) for a2, n, s, d in attempts if a2 == a] == [(1, 503, False), (2, 200, True)]
                              for a in cgj_alerts if alert_ids[a] == 1)
    assert all([d for a2, _, _, d in attempts if a2 == a][-1] for a in cgj_alerts)
    assert set(receiver.alerts) == cgj_alerts and all(valid for _, valid, _ in receiver.calls)
    # The return went to the next candidate's unit, or to the operators when there was none.
    assert len(reroutes) + len(requeued) == 1
    if reroutes:
        assert reroutes[0][0] != wrong["unit"]
    else:
        assert "returned by" in requeued[0][0] and "职能不符" in requeued[0][0]


def _read_all(servers: str, topic: str) -> list[bytes]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    values, idle = [], 0
    while idle < 4:  # the embedded broker's end offsets are unreliable: read until it goes quiet
        batch = consumer.poll(timeout_ms=500)
        idle = 0 if batch else idle + 1
        values += [m for records in batch.values() for r in records for m in messages_of(r.value, r.headers)]
    consumer.close()
    return values


def _by_ticket(tasks: dict[str, dict], prefix: str) -> dict[str, dict]:

    wanted = {ids.incident_id("hotline", f"{prefix}{name}"): name for name in ("late", "loop", "wrong")}
    return {wanted[t["incident_id"]]: t for t in tasks.values() if t["incident_id"] in wanted and t["role"] == "primary"
            and t["attempt"] == 0}


def test_an_event_applied_before_is_stored_again_when_redelivered(broker, pipeline_env, start_worker):
    """A worker killed between the task table's changelog write and the update on task-updates left
    the update lost: the event came again after the restart, found applied, and nothing was sent, so
    the store never had the task (SIGKILL ×5 fault test). A redelivered applied event now sends all it
    caused again: its update, with the task as it stands, and a return's re-routing."""
    names = TopicNames(pipeline_env["CITYOPS_TOPIC_PREFIX"])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    now = dt.datetime.now(dt.timezone.utc)
    worker = start_worker(pipeline_env)
    # Two streets and two texts: two cases, and not one caller repeating a call.
    for name, text, address in (("again", "主干道路灯坏了一个星期没人修", "A1区马王堆街道"),
                                ("back", "小区门口的路灯晚上不亮", "A7县泉塘街道")):
        producer.send(names.intake("hotline"), key=name.encode(), value=ticket(
            f"{names.prefix}{name}", "路灯不亮", text, address, now)).get(timeout=30)
    by_incident = wait_for(lambda ts: {t["incident_id"]: t for t in ts.values()} if len(ts) == 2 else None, worker)
    task, back = (by_incident[ids.incident_id("hotline", f"{names.prefix}{name}")] for name in ("again", "back"))

    def event(task: dict, kind: str, **extra) -> TaskEvent:
        return TaskEvent(event_id=f"{task['task_id']}-{kind}", task_id=task["task_id"], incident_id=task["incident_id"],
                         unit=task["unit"], kind=kind, at=dt.datetime.now(dt.timezone.utc), by="test", **extra)

    accepted, returned = event(task, "accepted"), event(back, "returned", reason="属地不符", note="不在本街道")
    for _ in range(2):  # the second time: redelivered
        for e in (accepted, returned):
            producer.send(names.task_events, key=e.task_id.encode(), value=e.model_dump_json().encode()).get(timeout=30)
    carried = read_until(broker, names.task_updates, 2, lambda update: update["task"]
                         if update["event"]["event_id"] == accepted.event_id else None)
    assert len(carried) == 2, carried
    assert [t["version"] for t in carried] == [2, 2] and {t["status"] for t in carried} == {"accepted"}
    stored = wait_for(lambda ts: ts[task["task_id"]] if ts[task["task_id"]]["status"] == "accepted" else None, worker)
    assert stored["version"] == 2  # one row per task, the event counted once
    # The return sent its incident back to the operator (属地不符) both times: the queue holds it once.
    requeued = read_until(broker, names.manual, 2, lambda review: review["attempt"]
                          if review["incident_id"] == back["incident_id"] else None)
    assert requeued == [1, 1]


def read_until(broker, topic: str, count: int, pick, timeout: float = 60) -> list:
    """What `pick` returns (not None) for the topic's JSON records, read again from the start until
    `count` are found or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        found = [picked for v in _read_all(broker.bootstrap_servers, topic) if (picked := pick(json.loads(v))) is not None]
        if len(found) >= count or time.monotonic() > deadline:
            return found


def test_events_before_their_dispatch_are_held_for_it_and_dead_lettered_if_it_never_comes(broker, pipeline_env,
                                                                                         start_worker):
    """After a restart, a merge can reach the task stage before its task's `dispatched` (that record
    being read again later): refused as "unknown task", a valid merge was dead-lettered (SIGKILL ×5
    fault test, inside the full suite). Such events are now held until the dispatch comes, then
    applied in order; if it never comes, each is dead-lettered after the wait with its reason."""
    env = pipeline_env | {"CITYOPS_UNKNOWN_TASK_WAIT_SECONDS": "3", "CITYOPS_RETENTION_CHECK_SECONDS": "0.5"}
    names = TopicNames(env["CITYOPS_TOPIC_PREFIX"])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
    worker = start_worker(env)
    producer.send(names.intake("hotline"), key=b"early", value=ticket(
        f"{names.prefix}early", "路灯不亮", "主干道路灯坏了一个星期没人修", "A1区马王堆街道",
        dt.datetime.now(dt.timezone.utc))).get(timeout=30)
    wait_for(lambda ts: ts if len(ts) == 1 else None, worker)
    # A real dispatch, copied under a new task id: it will come after two events for that task.
    [dispatched] = read_until(broker, names.task_events, 1, lambda e: e if e["kind"] == "dispatched" else None)
    task_id = "early-task"
    dispatched |= {"event_id": f"{task_id}-dispatched", "task_id": task_id,
                   "dispatch": dispatched["dispatch"] | {"dispatch_id": task_id}}
    later = dt.datetime.now(dt.timezone.utc)

    def event(task: str, kind: str) -> TaskEvent:
        return TaskEvent(event_id=f"{task}-{kind}", task_id=task, incident_id=dispatched["incident_id"],
                         unit=dispatched["unit"], kind=kind, at=later, by="test")

    merged, accepted, orphan = event(task_id, "merged"), event(task_id, "accepted"), event("no-such-task", "merged")
    for value in (merged.model_dump_json(), accepted.model_dump_json(), merged.model_dump_json(),
                  orphan.model_dump_json(), json.dumps(dispatched)):
        task = json.loads(value)["task_id"]
        producer.send(names.task_events, key=task.encode(), value=value.encode()).get(timeout=30)
    producer.close()

    held = wait_for(lambda ts: ts.get(task_id) if ts.get(task_id, {}).get("status") == "accepted" else None, worker)
    assert held["version"] == 3  # dispatched, then the merge (once, though it came twice) and the acceptance
    assert held["reports"] == 2
    stats = worker.wait_until(lambda s: s["deadlettered"] >= 1, timeout=60)
    time.sleep(2)  # six retention checks: nothing more is dead-lettered
    worker.stop()
    with Store(env["CLICKHOUSE_URL"]) as store:
        dead = store.query("SELECT stage, reason FROM {db}.dead_letters FINAL")
        events = store.query("SELECT kind FROM {db}.task_events FINAL WHERE task_id = {t:String} ORDER BY at, kind",
                             parameters={"t": task_id})
    assert dead == [("tasks", "task no-such-task: unknown task (never dispatched, or finished and forgotten after "
                              "the retention): it must be dispatched before it can be merged (held 3 s for its "
                              "dispatch)")], stats
    assert sorted(k for (k,) in events) == ["accepted", "dispatched", "merged"]
