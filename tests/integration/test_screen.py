"""The operations-centre screen in a real browser (Debian's Chromium driven by Playwright): it loads,
shows names rather than codes, and its figures are the api's; a screenshot is kept."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import httpx

from devtools.processes import Service
from infra.store import Store
from pipeline.dutylists import grids_file_of
from pipeline.lifecycle import apply, open_task
from pipeline.sla import SlaClock
from pipeline.workcalendar import WorkCalendar
from schemas import Dispatch, TaskEvent, TaskUpdate
from tests.integration.browser import SCREENSHOTS, chromium, open_page

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def _tasks() -> list[TaskUpdate]:
    """A few tasks of three units in three grids: closed on time, closed late, open and overdue."""
    clock = SlaClock(WorkCalendar())
    updates = []
    plan = [("cgj", "430102001001001", [("accepted", 1), ("completed", 5), ("verified", 6), ("closed", 6.5)]),
            ("cgj", "430102001001002", [("accepted", 3), ("completed", 60), ("verified", 61), ("closed", 62)]),
            ("zjj", "430102001001001", [("accepted", 1)]),
            ("scjgj", "430102001002001", [])]
    for n, (unit, grid, steps) in enumerate(plan):
        d = Dispatch(dispatch_id=f"t{n}", incident_id=f"i{n}", unit=unit, role="primary", item_no="CJ-029",
                     item_title="路灯", top_class="城乡建设", dutylist_version="v", legal_basis="b", confidence=1,
                     reason="r", dispatched_at=T0, accept_within_hours=2, finish_within_days=1)
        event = TaskEvent(event_id=f"t{n}-0", task_id=d.dispatch_id, incident_id=d.incident_id, unit=unit,
                          kind="dispatched", at=T0, dispatch=d)
        task = open_task(event, clock).model_copy(update={"grid_code": grid})
        updates.append(TaskUpdate(event=event, task=task))
        for k, (kind, hours) in enumerate(steps, start=1):
            event = TaskEvent(event_id=f"t{n}-{k}", task_id=d.dispatch_id, incident_id=d.incident_id, unit=unit,
                              kind=kind, at=T0 + dt.timedelta(hours=hours))
            task = apply(task, event, clock)
            updates.append(TaskUpdate(event=event, task=task))
    return updates


def test_the_screen_shows_the_apis_figures_with_names(tmp_path):
    url = f"chdb://{tmp_path / 'clickhouse'}"
    with Store(url) as store:  # filled before the api opens it: chDB is one process per directory
        store.migrate()
        store.insert(_tasks())
    api = Service.start("api", {"CLICKHOUSE_URL": url, "CITYOPS_DATA_DIR": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": ""},
                        tmp_path / "api.log")
    try:
        api.wait_ready(60)
        board = httpx.get(f"{api.url}/sla/?by=unit").json()
        with chromium() as (browser, errors):
            page = open_page(browser, errors, f"{api.url}/screen/")
            page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
            page.wait_for_timeout(500)  # the map and the chart draw after the figures
            page.screenshot(path=str(SCREENSHOTS / "screen.png"), full_page=True)
            on_time = page.inner_text("#f-ontime")
            overdue = page.inner_text("#f-overdue")
            board_rows = [row.locator("td").all_inner_texts() for row in page.locator("#board tbody tr").all()]
            score_rows = [row.locator("td").all_inner_texts() for row in page.locator("#scores tbody tr").all()]
            overdue_units = page.locator("#overdue tbody tr td:first-child").all_inner_texts()
            accuracy_rows = [row.locator("td").all_inner_texts() for row in page.locator("#accuracy tbody tr").all()]
            model_line = page.inner_text("#model")
            trend_series = page.evaluate("echarts.getInstanceByDom(document.getElementById('trend'))"
                                         ".getOption().series.map(s => s.name)")

            # Drill-down: an overdue task's timeline, then a grid's open tasks from a click on the map.
            page.click("#overdue tbody tr:first-child")
            page.wait_for_selector("#timeline[open] ol li")
            timeline_kinds = page.locator("#timeline li").evaluate_all("items => items.map(li => li.dataset.kind)")
            first_overdue = page.get_attribute("#overdue tbody tr:first-child", "data-key")
            page.screenshot(path=str(SCREENSHOTS / "screen-timeline.png"))
            page.click("#timeline .close")
            x, y = page.evaluate("""([lon, lat]) => {
                document.getElementById('map').scrollIntoView();
                const [x, y] = window.cityops.map.convertToPixel({ seriesIndex: 0 }, [lon, lat]);
                const box = document.getElementById('map').getBoundingClientRect();
                return [box.left + x, box.top + y]; }""", _centre_of(GRID_WITH_OVERDUE))
            page.mouse.click(x, y)
            page.wait_for_selector("#grid-panel:not([hidden]) #grid-tasks tbody tr")
            grid_units = page.locator("#grid-tasks tbody tr td:first-child").all_inner_texts()
            page.screenshot(path=str(SCREENSHOTS / "screen-grid.png"), full_page=True)
            page.click("#lang")
            english_title = page.inner_text("h1")
        assert not errors, errors
        total = board["total"]
        assert on_time == f"{100 * total['on_time_closure_rate']:.1f}%" and overdue == str(total["overdue_open"])

        # The board shows what `cityops report sla --json` prints, row for row, with names.
        report = json.loads(subprocess.run([sys.executable, "-m", "cityops.cli", "report", "sla", "--by", "unit",
                                            "--json", "--api", api.url], capture_output=True, text=True,
                                           check=True).stdout)
        assert board_rows == [[r["name"], str(r["tasks"]), str(r["open"]), str(r["overdue_open"]),
                               _pct(r["response_rate"]), _pct(r["handled_rate"]), _pct(r["closure_rate"]),
                               _pct(r["on_time_closure_rate"]), _pct(r["satisfaction_rate"])] for r in report]
        assert board_rows[0][0] == "市城市管理和综合执法局"  # a name, not the code cgj

        scores = httpx.get(f"{api.url}/scores/?by=unit").json()
        assert [row[1] for row in score_rows] == [r["name"] for r in scores["rows"]]
        assert [row[2] for row in score_rows] == ["—" if r["score"] is None else f"{r['score']:.1f}" for r in scores["rows"]]

        # Dispatch accuracy from returns and re-dispatches, as the api gives it, with names.
        accuracy = httpx.get(f"{api.url}/dispatch-accuracy/?by=unit").json()
        assert accuracy_rows == [[r["name"], str(r["dispatched"]), str(r["returned"]), str(r["wrong_function"]),
                                  str(r["wrong_area"]), _pct(r["return_rate"]), str(r["rerouted"]),
                                  _pct(r["reroute_rate"])] for r in accuracy["rows"]]
        assert accuracy["total"]["dispatched"] == 4 and accuracy_rows[0][0] == "市城市管理和综合执法局"
        # The model in force, as /model/ names it (none here: keywords alone, or the session's model).
        in_force = httpx.get(f"{api.url}/model/").json()["in_force"]["version"]
        assert model_line.startswith(f"派单模型 {in_force or '无（仅关键词）'}，") and "生产中派对单位" in model_line

        listed = httpx.get(f"{api.url}/overdue/").json()
        assert overdue_units == [r["unit_name"] for r in listed] and len(listed) == total["overdue_open"] == 2
        timeline = httpx.get(f"{api.url}/timeline/{first_overdue}").json()["events"]
        assert timeline_kinds == [e["kind"] for e in timeline] and timeline_kinds[0] == "dispatched"
        in_grid = httpx.get(f"{api.url}/grids/{GRID_WITH_OVERDUE}/tasks").json()
        assert grid_units == [r["unit_name"] for r in in_grid] and len(in_grid) == 1  # zjj's open task
        assert english_title == "City Operations Centre"
        assert trend_series == ["受理事件", "派单", "结案", "按期结案"]

        # Trends per city day, the empty days filled: 4 dispatched on the 2nd, one closed then on time, one late on the 4th.
        days = httpx.get(f"{api.url}/trends/", params={"bucket": "day", "since": "2026-11-01T00:00:00+08:00",
                                                       "until": "2026-11-06T00:00:00+08:00"}).json()["rows"]
        assert [(dt.datetime.fromisoformat(r["at"]).astimezone(T0.tzinfo).day, r["dispatched"], r["closed"],
                 r["closed_on_time"]) for r in days] == [(1, 0, 0, 0), (2, 4, 1, 1), (3, 0, 0, 0), (4, 0, 1, 0), (5, 0, 0, 0)]
    finally:
        api.stop()


GRID_WITH_OVERDUE = "430102001001001"


def _centre_of(grid_code: str) -> list[float]:
    grids = json.loads(grids_file_of(None).read_text(encoding="utf-8"))
    ring = next(f["geometry"]["coordinates"][0] for f in grids["features"] if f["properties"]["code"] == grid_code)
    return [sum(p[0] for p in ring[:-1]) / (len(ring) - 1), sum(p[1] for p in ring[:-1]) / (len(ring) - 1)]


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"
