"""The screen and the operator queue in a real browser on a running deployment (embedded broker,
worker, api): a new report shows in the figures and on the map within 5 s without a reload, and an
operator dispatches a waiting ticket from the queue page. Screenshots are kept."""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import httpx

from devtools.processes import poll_until
from infra.api import keys
from tests.integration.browser import SCREENSHOTS, chromium, open_page, sign_in, wait_until_true

GRID = "430102001001001"  # a grid of the sample city, and a point inside it
REPORT = {"report_id": "LIVE-1", "worker_id": "gw-07", "grid_code": GRID, "text": "小区门口路灯不亮，晚上很黑",
          "location": {"lat": 28.175, "lon": 112.9225}}
WAITING = {"ticket_no": "QUEUE-1", "received_at": "2026-12-01T09:30:00+08:00", "caller_phone": "13812345678",
           "title": "占道经营", "text": "有人在路边摆摊占道经营，影响通行"}  # territorial, and no street: an operator's


def _reasons() -> list[str]:
    """Reasons as the pipeline writes them, each kind once (the sensor ones from the code itself)."""
    from pipeline.classify import sensor_item
    from pipeline.dutylists import load_dutybook

    items = list(load_dutybook().items_for(None).values())
    sensor = [sensor_item(items, kind, value, unit)[1] for kind, value, unit in (
        ("noise", 80.0, "dB"), ("water_level", None, "cm"), ("water_level", 3.0, "m"), ("water_level", 5.0, "cm"))]
    return sensor + [
        "low confidence 0.45 for item CJ-006 (model: 城乡建设 0.62; item words: 开发商,交房 (close call: CJ-002 0.31 vs "
        "0.35))",
        "low confidence 0.41 for item SM-099 (model: 商贸旅游 0.41; no item's words in the text: the general item of 商贸旅游)",
        "no duty-list keyword in the text (model: outside the classes it knows 0.52)",
        "outside the classes the model knows, and no item's words in the text (model: outside the classes it knows 0.7)",
        "item CJ-050 is territorial (属地) but the incident's street is unknown",
        "returned by cgj (职能不符: 不归我局); next candidate",
        "unknown units: nosuchunit", "whistle summons units not in the registry: nobody",
        "摊派 refused: item CJ-050 占道经营 is cgj's (territorial); the list does not name 朝阳街道(a1-s02) for it",
        "low confidence 0.3 for item CJ-029 (model: 城乡建设 0.6; keywords: 路灯); repeats incident 3fa5bef684735042ad281fb007a91cdb (same caller, "
        "near-identical text)",
    ]


REASONS = _reasons()


def test_the_screen_is_live_and_an_operator_dispatches_from_the_queue(pipeline_env, start_worker):
    deployment = start_worker(pipeline_env)
    keys_file = Path(pipeline_env["CITYOPS_API_KEYS_FILE"])
    intake = httpx.Client(base_url=deployment.api.url, timeout=15, headers={
        "Authorization": f"Bearer {keys.issue(keys_file, 'live-intake', ['intake'])[1]}"})
    operator_token = keys.issue(keys_file, "live-operator", ["operator"])[1]
    operator = httpx.Client(base_url=deployment.api.url, timeout=15,
                            headers={"Authorization": f"Bearer {operator_token}"})
    with chromium() as (browser, errors):
        page = open_page(browser, errors, f"{deployment.api.url}/screen/")
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        assert page.inner_text("#f-incidents") == "0"

        # Live: the report is in the figures and its task on the map within 5 s of its acknowledgement.
        reported_at = dt.datetime.now(dt.timezone.utc).isoformat()
        assert intake.post("/intake/grid-reports", json=REPORT | {"reported_at": reported_at}).status_code == 201
        acknowledged = time.monotonic()
        wait_until_true(page, "document.getElementById('f-incidents').textContent === '1'", 5_000)
        # (ECharts lists every region of the map in its data: the grid's open count is what was drawn.)
        wait_until_true(
            page, f"(window.cityops.map.getOption().series[0].data.find(d => d.name === '{GRID}') || {{}}).value === 1",
            max(1, 5_000 - 1000 * (time.monotonic() - acknowledged)))
        page.screenshot(path=str(SCREENSHOTS / "screen-live.png"), full_page=True)

        # The operator queue: a wrong key is told so; the right one lists the ticket and dispatches it.
        incident_id = intake.post("/intake/hotline-tickets", json=WAITING).json()["incident_id"]
        poll_until(lambda: operator.get("/operator/queue").json(), lambda p: p["total"] == 1)
        queue = open_page(browser, errors, f"{deployment.api.url}/screen/queue", height=900)
        sign_in(queue, operator_token)
        row = f"tr[data-incident='{incident_id}']"
        queue.wait_for_selector(row)
        assert queue.inner_text("#total") == "1" and "占道经营" in queue.inner_text(row)
        # Why it waits, said in Chinese; the pipeline's own words on hover.
        assert "为属地事项，但诉求所在街道不明" in queue.inner_text(f"{row} td.reason")
        assert "is territorial" in queue.get_attribute(f"{row} td.reason", "title")
        said = queue.evaluate("reasons => reasons.map(reasonText)", REASONS)
        english = [(r, z) for r, z in zip(REASONS, said, strict=True)
                   if re.search(r"[A-Za-z]{3,}", re.sub(r"[A-Z]{2,3}-\d{3}|[0-9a-f]{32}|%LEL|\bdeg\b|\bdB\(A\)", "", z))]
        assert not english, english  # every reason the pipeline writes, entirely in Chinese
        item = next(i for i in operator.get("/operator/items").json()
                    if i["scope"] == "department" and not i["fallback"])
        queue.fill(f"{row} .other-item", item["number"])
        queue.screenshot(path=str(SCREENSHOTS / "queue.png"), full_page=True)
        queue.click(f"{row} .dispatch-other")
        queue.wait_for_selector("#message.ok")
    assert not errors, errors

    status = poll_until(lambda: intake.get(f"/status/{WAITING['ticket_no']}").json(),
                        lambda s: s["stage"] == "已派单")
    assert status["task"]["item_no"] == item["number"] and status["task"]["unit"] == item["primary_unit"]
    poll_until(lambda: operator.get("/operator/queue").json(), lambda p: p["total"] == 0)
