"""The whole loop over HTTP on the embedded broker, as the three audiences drive it: a hotline vendor
posts a ticket, the pipeline dispatches it by the duty list, the department accepts and completes it,
the operations centre verifies and closes it, the hotline's call-back scores it, and the reporter's
status shows 办结 and the score. A department key is refused on another unit's task; a replayed request
with the same idempotency key creates nothing; the operator closes an unroutable ticket."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import psutil

from devtools.processes import poll_until
from infra.api import keys

TICKET = {"ticket_no": "LOOP-1", "received_at": "2026-12-01T09:30:00+08:00", "caller_phone": "13812345678",
          "caller_name": "赵六", "title": "路灯不亮", "text": "主干道路灯坏了一个星期，赵六多次反映",
          "address": "A7县泉塘街道"}


def test_hotline_to_score_over_http(pipeline_env, start_worker):
    deployment = start_worker(pipeline_env)
    keys_file = Path(pipeline_env["CITYOPS_API_KEYS_FILE"])
    # Closed by default: both ports listen on loopback only, and the worker serves no table contents.
    for service in (deployment.api, deployment.worker):
        listening = {c.laddr.ip for c in psutil.Process(service.process.pid).net_connections("tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == service.web_port}
        assert listening == {"127.0.0.1"}, (service.role, listening)
    for path in ("/table/tasks/", "/router/", "/graph/", "/stats/"):
        assert httpx.get(f"{deployment.worker.url}{path}").status_code == 404, path

    def client(*scopes: str) -> httpx.Client:
        token = keys.issue(keys_file, f"test-{'-'.join(scopes)}", list(scopes))[1]
        return httpx.Client(base_url=deployment.api.url, headers={"Authorization": f"Bearer {token}"}, timeout=15)

    hotline, operator = client("intake"), client("operator")
    first = hotline.post("/intake/hotline-tickets", json=TICKET, headers={"Idempotency-Key": "loop-1"})
    assert first.status_code == 201, first.text
    replay = hotline.post("/intake/hotline-tickets", json=TICKET, headers={"Idempotency-Key": "loop-1"})
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"

    status = poll_until(lambda: hotline.get(f"/status/{TICKET['ticket_no']}"),
                         lambda r: r.status_code == 200 and r.json()["stage"] == "已派单").json()
    task_id, unit = status["task"]["task_id"], status["task"]["unit"]
    assert "13812345678" not in str(status) and "赵六" not in str(status)

    department, other = client(f"department:{unit}"), client("department:someone-else")
    [task] = department.get(f"/departments/{unit}/tasks").json()
    assert task["task_id"] == task_id and task["title"] == "路灯不亮" and task["item_title"] and task["finish_by"]
    assert "赵六" not in task["text"] and "[姓名]" in task["text"]
    refused = other.post(f"/tasks/{task_id}/accept")
    assert refused.status_code == 403 and unit in refused.json()["detail"]
    assert other.get(f"/departments/{unit}/tasks").status_code == 403
    assert hotline.post(f"/tasks/{task_id}/accept").status_code == 403  # an intake key is no department

    accepted = department.post(f"/tasks/{task_id}/accept")
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted", accepted.text
    again = department.post(f"/tasks/{task_id}/accept")  # right after: its own write counts, not a lagging store
    assert again.status_code == 409 and "not possible when the task is accepted" in again.json()["detail"]
    done = department.post(f"/tasks/{task_id}/complete", json={"result": "已更换灯泡，电话联系赵先生（13812345678）确认恢复照明"})
    assert done.json()["status"] == "completed", done.text
    assert department.post(f"/tasks/{task_id}/return", json={"reason": "wrong"}).status_code == 422
    assert operator.post(f"/tasks/{task_id}/verify", json={"by": "grid-7"}).json()["status"] == "verified"
    assert operator.post(f"/tasks/{task_id}/close").json()["status"] == "closed"
    assert hotline.post(f"/tasks/{task_id}/evaluate", json={"score": 3}).json()["status"] == "evaluated"

    final = poll_until(lambda: hotline.get(f"/status/{TICKET['ticket_no']}").json(), lambda s: s["stage"] == "已评价")
    assert final["task"]["score"] == 3 and final["task"]["completed_at"]
    assert dt.datetime.fromisoformat(final["reported_at"]) == dt.datetime.fromisoformat(TICKET["received_at"])
    assert final["result"]["text"] == "已更换灯泡，电话联系某先生（[电话]）确认恢复照明"
    stats = deployment.stats()
    assert stats["clickhouse_incidents"] == 1 and stats["deadlettered"] == 0  # the replay made nothing

    # A territorial matter (属地) in no known street waits for an operator, who closes it without a dispatch.
    unmatched = {k: v for k, v in TICKET.items() if k != "address"} | {
        "ticket_no": "LOOP-2", "title": "占道经营", "text": "有人在路边摆摊占道经营，影响通行"}
    incident_id = hotline.post("/intake/hotline-tickets", json=unmatched).json()["incident_id"]
    page = poll_until(lambda: operator.get("/operator/queue").json(), lambda p: p["total"] == 1)
    assert page["items"][0]["incident_id"] == incident_id and page["items"][0]["text"] == unmatched["text"]
    assert operator.post(f"/operator/queue/{incident_id}/close", json={"note": "已直接答复"}).status_code == 422
    assert operator.post(f"/operator/queue/{incident_id}/close",
                         json={"reason": "answered", "note": "已电话答复"}).status_code == 202
    poll_until(lambda: operator.get("/operator/queue").json(), lambda p: p["total"] == 0)
    assert hotline.get("/status/LOOP-2").json()["stage"] == "已直接答复"
    assert operator.post(f"/operator/queue/{incident_id}/close",
                         json={"reason": "answered", "note": "again"}).status_code == 404
    assert deployment.wait_until(lambda s: s["closed_without_dispatch"] == {"answered": 1}, 30)
