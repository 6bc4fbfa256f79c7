"""The pages of the people who act on tasks, in a real browser on a running deployment. The department
workbench (`/screen/unit`): a clerk signs in with the unit's key, sees the unit's tasks most urgent
first, accepts and completes one and returns another as 职能不符; the wall screen's figures move and
the return shows in dispatch accuracy. The reporter's lookup (`/screen/status`): the ticket number and
the phone it came from give its progress and result in words, and a closed ticket's score."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx

from devtools.processes import poll_until
from infra.api import keys
from tests.integration.browser import SCREENSHOTS, chromium, open_page, sign_in, wait_until_true

CN = dt.timezone(dt.timedelta(hours=8))
CGJ = "市城市管理和综合执法局"


def _ticket(no: str, text: str, street: str, phone: str) -> dict:
    return {"ticket_no": no, "received_at": dt.datetime.now(CN).isoformat(), "title": "路灯不亮", "text": text,
            "address": street, "caller_phone": phone}


def _row_of(page, table: str, name: str) -> list[str]:
    for row in page.locator(f"{table} tbody tr").all():
        cells = row.locator("td").all_inner_texts()
        if cells and cells[0] == name:
            return cells
    return []


def test_a_clerk_accepts_completes_and_returns_tasks_from_the_workbench(pipeline_env, start_worker):
    deployment = start_worker(pipeline_env)
    keys_file, url = Path(pipeline_env["CITYOPS_API_KEYS_FILE"]), deployment.api.url
    vendor = httpx.Client(base_url=url, timeout=15, headers={
        "Authorization": f"Bearer {keys.issue(keys_file, 'vendor', ['intake'])[1]}"})
    clerk_token = keys.issue(keys_file, "cgj-clerk", ["department:cgj"])[1]
    clerk = httpx.Client(base_url=url, timeout=15, headers={"Authorization": f"Bearer {clerk_token}"})
    # Two callers in two streets (one caller's repeat in one place would join the first report's case).
    for n, (street, phone) in enumerate([("A1区马王堆街道", "13800138000"), ("A7县泉塘街道", "13900139000")]):
        ticket = _ticket(f"BENCH-{n}", f"第{n}盏路灯晚上不亮，一个星期了", street, phone)
        assert vendor.post("/intake/hotline-tickets", json=ticket).status_code == 201
    tasks = poll_until(lambda: clerk.get("/departments/cgj/tasks").json(), lambda ts: len(ts) == 2, timeout=60,
                       what="two tasks for cgj")
    first, second = (t["task_id"] for t in tasks)
    assert clerk.get("/departments/").json() == [{"code": "cgj", "name": CGJ}]
    summary = clerk.get("/departments/cgj/summary").json()
    assert summary["open"] == 2 and summary["by_status"] == {"dispatched": 2}
    assert [i["item_no"] for i in summary["items"]] == [tasks[0]["item_no"]] and summary["items"][0]["item_title"]

    with chromium() as (browser, errors):
        screen = open_page(browser, errors, f"{url}/screen/")
        screen.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        wait_until_true(screen, "[...document.querySelectorAll('#board tbody tr td:first-child')]"
                                f".some(td => td.textContent === '{CGJ}')", 15_000)
        assert _row_of(screen, "#board", CGJ)[5] == "0.0%"  # handled (办结率): nothing completed yet

        bench = open_page(browser, errors, f"{url}/screen/unit", height=1100)
        sign_in(bench, clerk_token)
        bench.wait_for_selector("body[data-loaded=true]")
        assert bench.inner_text("#unit-name") == CGJ and bench.inner_text("#s-open") == "2"
        assert bench.locator("#tasks tbody tr").evaluate_all("rows => rows.map(r => r.dataset.task)") == [first, second]
        assert bench.inner_text(f"tr[data-task='{first}'] td.status") == "待接单"
        assert "13800138000" not in bench.content() and "13900139000" not in bench.content()

        # Accept, then complete: each answered with the new status in words.
        bench.click(f"tr[data-task='{first}']")
        bench.wait_for_selector(f"#detail[data-task='{first}'] .action[data-action=accept]")
        assert bench.inner_text("#d-item").startswith(tasks[0]["item_no"]) and bench.inner_text("#d-basis")
        bench.click(".action[data-action=accept] button")
        bench.wait_for_selector("#message.ok")
        assert bench.inner_text("#message") == "接单：工单现为「办理中」"
        bench.wait_for_selector(f"#detail[data-task='{first}'] .action[data-action=complete]", timeout=20_000)
        bench.click(".action[data-action=complete] button")  # no result text: refused on the page
        assert bench.inner_text("#message") == "请填写办理结果（必填，将告知诉求人）"
        bench.fill(".action[data-action=complete] textarea[name=result]", "已更换灯泡，恢复照明")
        bench.fill(".action[data-action=complete] textarea[name=photos]", "https://photos.example.org/a.jpg")
        bench.screenshot(path=str(SCREENSHOTS / "unit.png"), full_page=True)
        bench.click(".action[data-action=complete] button")
        wait_until_true(bench, "document.getElementById('message').textContent.includes('已办结待核查')", 10_000)

        # A return as 职能不符: the api's answer, then the task leaves the unit's open list.
        bench.click(f"tr[data-task='{second}']")
        bench.wait_for_selector(f"#detail[data-task='{second}'] .action[data-action=return]")
        bench.select_option(".action[data-action=return] select[name=reason]", "职能不符")
        bench.fill(".action[data-action=return] input[name=note]", "不属于本局职责")
        bench.click(".action[data-action=return] button")
        wait_until_true(bench, "document.getElementById('message').textContent === '退单：工单现为「已退单」'", 10_000)
        # Neither is open any more (completed, returned); a return re-routed to cgj would be a new task.
        bench.wait_for_selector(f"tr[data-task='{second}']", state="detached", timeout=20_000)
        assert bench.locator(f"tr[data-task='{first}']").count() == 0
        assert bench.inner_text("#s-open") == str(clerk.get("/departments/cgj/summary").json()["open"])
        bench.click("#lang")
        assert bench.inner_text("h1") == "Department workbench"
        wait_until_true(bench, "document.getElementById('d-status').textContent === 'returned'", 10_000)
        bench.screenshot(path=str(SCREENSHOTS / "unit-en.png"), full_page=True)

        # The wall screen's figures move: cgj's handled rate (办结率) as the api gives it, and the return in
        # dispatch accuracy.
        board = poll_until(lambda: httpx.get(f"{url}/sla/?by=unit").json()["rows"],
                           lambda rows: any(r["key"] == "cgj" and r["handled"] == 1 for r in rows), timeout=30,
                           what="cgj's completion on the board")
        handled = next(f"{100 * r['handled_rate']:.1f}%" for r in board if r["key"] == "cgj")
        wait_until_true(screen, f"""(() => {{ const row = [...document.querySelectorAll('#board tbody tr')]
            .find(r => r.cells[0].textContent === '{CGJ}'); return row && row.cells[5].textContent === '{handled}'; }})()""",
                        30_000)
        wait_until_true(screen, f"""(() => {{ const row = [...document.querySelectorAll('#accuracy tbody tr')]
            .find(r => r.cells[0].textContent === '{CGJ}'); return row && row.cells[3].textContent === '1'; }})()""",
                        30_000)
        screen.screenshot(path=str(SCREENSHOTS / "screen-after-workbench.png"), full_page=True)

        # The centre checks and closes the completed task; the reporter looks it up and scores it.
        operator = httpx.Client(base_url=url, timeout=15, headers={
            "Authorization": f"Bearer {keys.issue(keys_file, 'op', ['operator'])[1]}"})
        assert operator.post(f"/tasks/{first}/verify", json={"by": "网格员"}).json()["status"] == "verified"
        assert operator.post(f"/tasks/{first}/close", json={}).json()["status"] == "closed"
        poll_until(lambda: vendor.get("/status/BENCH-0").json(), lambda s: s["stage"] == "已结案", timeout=30,
                   what="ticket BENCH-0 closed")
        lookup = open_page(browser, errors, f"{url}/screen/status", height=900)
        lookup.fill("#ticket", "BENCH-0")
        lookup.fill("#phone", "13900139000")  # the other caller's phone: told nothing
        lookup.click("button.main")
        lookup.wait_for_selector("#message.error")
        assert lookup.inner_text("#message").startswith("没有找到该工单") and lookup.is_hidden("#result")
        lookup.fill("#phone", "138 0013 8000")
        lookup.click("button.main")
        lookup.wait_for_selector("body[data-stage='已结案']")
        assert lookup.inner_text("#r-unit") == CGJ and lookup.inner_text("#r-result") == "已更换灯泡，恢复照明"
        assert lookup.locator("#steps li.done").count() == 4 and lookup.inner_text("#steps li.now") == "已结案"
        assert "路灯晚上不亮" not in lookup.content()  # the report's text is not shown
        lookup.screenshot(path=str(SCREENSHOTS / "status.png"), full_page=True)
        lookup.click("#score button[data-score='3']")
        lookup.wait_for_selector("#message.ok")
        assert lookup.inner_text("#message") == "感谢您的评价：满意" and lookup.is_hidden("#score")
    assert not errors, errors
    scored = poll_until(lambda: vendor.get("/status/BENCH-0").json(), lambda s: s["stage"] == "已评价", timeout=30,
                        what="ticket BENCH-0 scored")
    assert scored["task"]["score"] == 3 and not scored["can_score"]
    # Once only; and guessing is slow: a few lookups a minute from one address, then 429.
    again = httpx.post(f"{url}/status/score", json={"ticket_no": "BENCH-0", "phone": "13800138000", "score": 1})
    assert again.status_code == 409, again.text
    answers = [httpx.post(f"{url}/status/lookup", json={"ticket_no": "BENCH-0", "phone": f"1380013{n:04d}"}).status_code
               for n in range(12)]
    assert set(answers) <= {404, 429} and answers[-1] == 429, answers
    accuracy = httpx.get(f"{url}/dispatch-accuracy/?by=unit").json()
    assert next(r for r in accuracy["rows"] if r["key"] == "cgj")["wrong_function"] == 1
    assert clerk.get(f"/departments/cgj/tasks/{first}").json()["score"] == 3
