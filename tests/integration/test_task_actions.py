"""What department clerks, operators and the hotline do over HTTP, on a running deployment: every task
action with its answer, the department's list (order, filters, paging), the operator queue's filters,
the checks made at the door, and who may score a result."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from devtools.processes import poll_until
from infra.api import keys
from pipeline.textmodel import TopClassModel

CN = dt.timezone(dt.timedelta(hours=8))


class Caller:
    def __init__(self, url: str, token: str):
        self.http = httpx.Client(base_url=url, timeout=20, headers={"Authorization": f"Bearer {token}"})

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return self.http.post(path, json=body)

    def get(self, path: str, **params) -> httpx.Response:
        return self.http.get(path, params=params)


def _ticket(no: str, text: str, address: str, **extra) -> dict:
    return {"ticket_no": no, "received_at": dt.datetime.now(CN).isoformat(), "title": "路灯不亮", "text": text,
            "address": address, "caller_phone": "13800138000", **extra}


def test_clerks_operators_and_the_hotline_act_on_tasks_over_http(pipeline_env, start_worker):
    deployment = start_worker(pipeline_env)
    keys_file, url = Path(pipeline_env["CITYOPS_API_KEYS_FILE"]), deployment.api.url

    def key(name: str, *scopes: str) -> Caller:
        return Caller(url, keys.issue(keys_file, name, list(scopes))[1])

    vendor, other_vendor = key("vendor", "intake"), key("other-vendor", "intake")
    clerk, stranger = key("cgj-clerk", "department:cgj"), key("zjj-clerk", "department:zjj")
    operator, callback, reader = key("op", "operator"), key("callback", "callback"), key("screen", "read")

    streets = ["A1区马王堆街道", "A7县泉塘街道", "A3区望月湖街道"]
    for n, street in enumerate(streets):
        sent = vendor.post("/intake/hotline-tickets", _ticket(f"ACT-{n}", f"第{n}盏路灯晚上不亮，一个星期了", street))
        assert sent.status_code == 201, sent.text
    tasks = poll_until(lambda: clerk.get("/departments/cgj/tasks").json(), lambda ts: len(ts) == 3, timeout=60,
                       what="three tasks for cgj")
    # Most urgent first: the earliest finish deadline (all three dispatched just now, in order).
    assert [t["finish_by"] for t in tasks] == sorted(t["finish_by"] for t in tasks)
    assert all(t["legal_basis"] and t["item_title"] and "13800138000" not in str(t) for t in tasks)
    first, second = clerk.get("/departments/cgj/tasks", limit=1).json(), \
        clerk.get("/departments/cgj/tasks", limit=1, offset=1).json()
    assert [first[0]["task_id"], second[0]["task_id"]] == [tasks[0]["task_id"], tasks[1]["task_id"]]
    assert stranger.get("/departments/cgj/tasks").status_code == 403
    a, b, c = (t["task_id"] for t in tasks)

    def act(caller: Caller, task: str, action: str, body: dict | None = None, expect: int = 200) -> dict:
        answer = caller.post(f"/tasks/{task}/{action}", body)
        assert answer.status_code == expect, (action, answer.text)
        return answer.json()

    def stored_status(task: str, status: str) -> None:  # the worker applied it and the store has it
        poll_until(lambda: clerk.get(f"/departments/cgj/tasks/{task}").json(), lambda t: t.get("status") == status,
                   timeout=30, what=f"task {task} {status}")

    act(stranger, a, "accept", expect=403)
    assert act(clerk, a, "accept")["status"] == "accepted"
    assert "not possible" in act(clerk, a, "accept", expect=409)["detail"]
    assert act(clerk, a, "extension", {"days": 3, "note": "材料未到"})["status"] == "extension_pending"
    assert act(operator, a, "approve-extension", {"days": 2})["status"] == "accepted"
    stored_status(a, "accepted")
    assert act(clerk, a, "extension", {"days": 5})["status"] == "extension_pending"
    assert act(operator, a, "refuse-extension")["status"] == "accepted"
    # 挂账: the review date is a real one, after today and within a year (9999-12-31 once stopped the sink).
    for review_on in ("9999-12-31", "2020-01-01", (dt.date.today() + dt.timedelta(days=400)).isoformat()):
        refused = act(clerk, a, "park", {"reason": "需市政府协调", "review_on": review_on}, expect=422)
        assert [e["field"] for e in refused["errors"]] == ["body.review_on"] and review_on not in str(refused)
    numeric = act(clerk, a, "park", {"reason": "需协调", "review_on": 20261231}, expect=422)
    assert [e["field"] for e in numeric["errors"]] == ["body.review_on"]
    review_on = (dt.datetime.now(CN).date() + dt.timedelta(days=30)).isoformat()
    assert act(clerk, a, "park", {"reason": "需市政府协调", "review_on": review_on})["status"] == "parked"
    assert act(clerk, a, "resume")["status"] == "accepted"
    assert act(clerk, a, "complete", {"result": "已更换灯泡", "photos": ["https://img.example/a.jpg"]})["status"] == \
        "completed"
    assert act(clerk, a, "complete", {"result": "x", "photos": ["javascript:alert(1)"]}, expect=422)
    assert act(operator, a, "rework", {"reason": "现场仍不亮"})["status"] == "accepted"
    assert act(clerk, a, "complete", {"result": "已更换线路"})["status"] == "completed"
    assert act(operator, a, "verify", {"by": "网格员A"})["status"] == "verified"
    assert act(operator, a, "close")["status"] == "closed"
    stored_status(a, "closed")
    # 回访: only the reporter's channel scores, once.
    act(other_vendor, a, "evaluate", {"score": 1}, expect=403)
    act(operator, a, "evaluate", {"score": 1}, expect=403)
    assert act(vendor, a, "evaluate", {"score": 3})["status"] == "evaluated"
    act(callback, a, "evaluate", {"score": 1}, expect=409)
    # A return for the wrong function, a supervision, and a department acting on another's task.
    assert act(operator, b, "supervise", {"note": "请加快处置"})["status"] == "dispatched"
    assert act(clerk, b, "return", {"reason": "职能不符", "note": "不归我局"})["status"] == "returned"
    act(clerk, c, "complete", {"result": "x"}, expect=409)
    # The return is the production measure of dispatch accuracy: cgj's first dispatches, one sent back.
    accuracy = poll_until(lambda: reader.get("/dispatch-accuracy/", by="unit").json(),
                          lambda r: any(row["key"] == "cgj" and row["wrong_function"] == 1 for row in r["rows"]),
                          timeout=30, what="the return counted")
    cgj = next(row for row in accuracy["rows"] if row["key"] == "cgj")
    assert cgj["dispatched"] == 3 and cgj["returned"] == 1 and cgj["return_rate"] == round(1 / 3, 4)

    # The list's filters: a status, and every status.
    poll_until(lambda: clerk.get("/departments/cgj/tasks", status="evaluated").json(),
               lambda ts: [t["task_id"] for t in ts] == [a], timeout=30, what="the evaluated task listed")
    everything = clerk.get("/departments/cgj/tasks", status="").json()
    assert {a, b, c} <= {t["task_id"] for t in everything}
    assert c in {t["task_id"] for t in clerk.get("/departments/cgj/tasks").json()}  # open: c is still dispatched

    # The operator queue: a report no item fits waits; filters and paging; rulings checked before 202.
    assert vendor.post("/intake/hotline-tickets", _ticket("ACT-Q", "感谢你们上次的帮助，谢谢", "A1区马王堆街道")
                       ).status_code == 201
    page = poll_until(lambda: reader.get("/operator/queue").json(), lambda p: p["total"] >= 1, timeout=60,
                      what="the queue")
    waiting = page["items"][0]
    assert reader.get("/operator/queue", reason=waiting["reason"][:12]).json()["total"] >= 1
    assert reader.get("/operator/queue", reason="no such reason at all").json()["total"] == 0
    assert reader.get("/operator/queue", limit=1, offset=1).json()["items"] == []
    incident = waiting["incident_id"]
    unknown_item = operator.post(f"/operator/queue/{incident}/dispatch", {"item_no": "NOPE-999"})
    assert unknown_item.status_code == 422 and unknown_item.json()["errors"][0]["field"] == "body.item_no"
    unknown_unit = operator.post(f"/operator/queue/{incident}/dispatch", {"item_no": "CJ-029", "units": ["nosuchunit"]})
    assert unknown_unit.status_code == 422 and unknown_unit.json()["errors"][0]["field"] == "body.units.0"
    assert operator.post(f"/operator/queue/{incident}/close", {"reason": "answered", "note": "已致谢"}).status_code == 202

    # Every ruling and return is an example for the next model, naming the model that decided before.
    examples = poll_until(lambda: reader.get("/operator/rulings").json(),
                          lambda rs: {r["kind"] for r in rs} >= {"return", "not_for_dispatch"}, timeout=30,
                          what="the return and the close as examples")
    returned = next(r for r in examples if r["kind"] == "return")
    closed = next(r for r in examples if r["kind"] == "not_for_dispatch")
    assert (returned["ruling_id"], returned["wrong_unit"], returned["decided_by"]) == (b, "cgj", "cgj")
    assert (closed["incident_id"], closed["decided_by"]) == (incident, "op") and "致谢" not in str(closed)
    assert all(len(r["text_sha256"]) == 64 and "13800138000" not in str(r) for r in examples)
    model = TopClassModel.load(Path(pipeline_env["CITYOPS_MODEL_DIR"]))
    assert returned["model_version"] == closed["model_version"] == (model.version if model else None)
    assert stranger.get("/operator/rulings").status_code == 403
    if model:  # the production measure per model: its first dispatches, and those returned as 职能不符
        def both() -> tuple[dict, list]:
            return reader.get("/dispatch-accuracy/").json()["total"], reader.get("/model/").json()["models"]

        total, models = poll_until(both, lambda b: [(m["dispatched"], m["wrong_function"]) for m in b[1]] == [
            (b[0]["dispatched"], b[0]["wrong_function"])], timeout=30, what="each first dispatch counted for its model")
        assert models[0]["version"] == model.version and total["wrong_function"] == 1
        assert models[0]["right_unit_rate"] == round(1 - 1 / total["dispatched"], 4)


def test_the_door_refuses_what_the_pipeline_would_refuse_later(pipeline_env, start_worker):
    deployment = start_worker(pipeline_env)
    keys_file, url = Path(pipeline_env["CITYOPS_API_KEYS_FILE"]), deployment.api.url
    vendor = Caller(url, keys.issue(keys_file, "vendor", ["intake"])[1])
    now = dt.datetime.now(CN).isoformat()

    def fields(answer: httpx.Response) -> list[str]:
        assert answer.status_code == 422, answer.text
        return [e["field"] for e in answer.json()["errors"]]

    whistle = {"whistle_id": "W-1", "unit": "a1-s01", "blown_at": now, "text": "违建", "summoned_units": ["cgj", "nobody"]}
    assert fields(vendor.post("/intake/whistles", whistle)) == ["body.summoned_units.1"]
    assert fields(vendor.post("/intake/whistles", whistle | {"unit": "cgj", "summoned_units": ["zjj"]})) == ["body.unit"]
    grid = {"report_id": "G-1", "worker_id": "w1", "grid_code": "abc", "reported_at": now, "text": "井盖丢失",
            "location": {"lat": 28.19, "lon": 112.98}}
    assert fields(vendor.post("/intake/grid-reports", grid)) == ["body.grid_code"]
    assert fields(vendor.post("/intake/grid-reports", grid | {"grid_code": "999999999999999"})) == ["body.grid_code"]
    assert fields(vendor.post("/intake/grid-reports", grid | {"grid_code": "430102001001001",
                                                               "reported_at": 1764547200})) == ["body.reported_at"]
    reading = {"sensor_id": "S1", "kind": "water_level", "value": 30, "unit": "cm", "measured_at": now,
               "location": {"lat": 28.19, "lon": 112.98}}
    assert fields(vendor.post("/intake/sensor-readings", {"readings": [reading], "extra": 1})) == ["body.extra"]
    for text in ("路灯\x00坏了", "路灯\x07坏了", "\x1b[31m路灯坏了"):
        assert fields(vendor.post("/intake/hotline-tickets", _ticket("CTL-1", text, "A1区"))) == ["body.text"]
    assert fields(vendor.post("/intake/hotline-tickets", _ticket("CTL-2", "路灯坏了", "A1区\r\n3栋"))) == ["body.address"]
    assert vendor.post("/intake/hotline-tickets", _ticket("CTL-3", "路灯坏了\n晚上不亮", "A1区")).status_code == 201

    # A ticket number used again with other content: 409 once the first is stored; the same again is a retry.
    first = _ticket("REUSE-1", "小区门口的路灯不亮", "A1区马王堆街道")
    assert vendor.post("/intake/hotline-tickets", first).status_code == 201
    poll_until(lambda: deployment.api.get_json("/stats/")["clickhouse_incidents"], lambda n: n >= 2, timeout=60,
               what="the first ticket stored")
    conflict = vendor.post("/intake/hotline-tickets", first | {"text": "燃气泄漏"})
    assert conflict.status_code == 409 and conflict.json()["errors"][0]["field"] == "body.ticket_no"
    assert "燃气" not in conflict.text
    assert vendor.post("/intake/hotline-tickets", first).status_code == 201
