"""The monthly bulletin's documents, from the bulletin the api assembles (`GET /reports/bulletin`):
HTML from a template (jinja2, autoescaped: report texts are citizens' words), its charts drawn by
ECharts on the server (Node, `infra/api/web/chart.mjs`: the pages' chart library, no browser), a
workbook (xlsxwriter: a sheet per table, Excel's own charts) and a PDF (the HTML printed by Debian's
Chromium through Playwright)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipeline.rates import SLA_RATES

WEB = Path(__file__).parent / "api" / "web"
TEMPLATES = Path(__file__).parent / "templates"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "pdf": "application/pdf",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
# The columns of the unit and street tables: the three rates (响应率, 解决率, 满意率) and on-time closure.
RATES = ("response_rate", "resolution_rate", "satisfaction_rate", "on_time_closure_rate")
RATE_TITLES = {r.name: r.label.split(" ")[0] for r in SLA_RATES}
PROBLEMS_SHOWN = 10


class DocumentUnavailable(RuntimeError):
    """What a document needs is missing here (Node with ECharts, Chromium with Playwright)."""


def render_bulletin(bulletin: dict, fmt: str) -> bytes:
    if fmt == "html":
        return bulletin_html(bulletin).encode()
    if fmt == "xlsx":
        return bulletin_xlsx(bulletin)
    if fmt == "pdf":
        return html_to_pdf(bulletin_html(bulletin))
    raise ValueError(f"no bulletin format {fmt!r}")


def bulletin_html(bulletin: dict) -> str:
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    environment.filters["pct"] = _pct
    specs = {name: spec for name, spec in (("ranking", _ranking_chart(bulletin)), ("heat", _heat_chart(bulletin)))
             if spec}
    svgs = dict(zip(specs, charts(list(specs.values())), strict=True)) if specs else {}
    return environment.get_template("bulletin.html").render(
        b=bulletin, rates=RATES, rate_titles=RATE_TITLES, accuracy={r["key"]: r for r in bulletin["dispatch_accuracy"]["rows"]},
        charts=svgs, problems=bulletin["problems"][:PROBLEMS_SHOWN])


def charts(specs: list[dict]) -> list[str]:
    """SVG strings of ECharts options ({option, width, height}), drawn by Node."""
    node = shutil.which("node")
    if node is None or not (WEB / "node_modules" / "echarts").exists():
        raise DocumentUnavailable("the bulletin's charts need Node and ECharts (npm ci in infra/api/web; "
                                  "`make demo` does it)")
    run = subprocess.run([node, str(WEB / "chart.mjs")], input=json.dumps(specs), capture_output=True, text=True,
                         timeout=60, cwd=WEB, check=False)
    if run.returncode != 0:
        raise DocumentUnavailable(f"ECharts could not draw the charts: {run.stderr.strip()[-300:]}")
    return json.loads(run.stdout)


def html_to_pdf(html: str) -> bytes:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise DocumentUnavailable("the PDF needs Playwright (pip install 'cityops[pdf]') and Chromium") from None
    if not Path(CHROMIUM).exists():
        raise DocumentUnavailable("the PDF needs Chromium (Debian: apt install chromium fonts-noto-cjk)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_content(html, wait_until="load")
            return page.pdf(format="A4", print_background=True,
                            margin={"top": "14mm", "bottom": "14mm", "left": "12mm", "right": "12mm"})
        finally:
            browser.close()


def bulletin_xlsx(bulletin: dict) -> bytes:
    import xlsxwriter

    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    bold, percent = book.add_format({"bold": True}), book.add_format({"num_format": "0.0%"})

    def sheet(name: str, header: list[str], rows: list[list]):
        ws = book.add_worksheet(name)
        ws.write_row(0, 0, header, bold)
        for n, row in enumerate(rows, start=1):
            for k, value in enumerate(row):
                ws.write(n, k, value, percent if isinstance(value, float) and k and "率" in header[k] else None)
        ws.set_column(0, 0, 28)
        ws.set_column(1, len(header), 12)
        return ws

    accuracy = {r["key"]: r for r in bulletin["dispatch_accuracy"]["rows"]}
    for title, rows in (("承办单位", bulletin["units"]), ("街道", bulletin["streets"])):
        sheet(title, ["名称", "工单", *[RATE_TITLES[r] for r in RATES], "超期未办", "退单", "改派"],
              [[r["name"], r["tasks"], *[r[k] for k in RATES], r["overdue_open"],
                accuracy.get(r["key"], {}).get("returned", ""), accuracy.get(r["key"], {}).get("rerouted", "")]
               for r in rows])
    for ranking in bulletin["rankings"]:
        by = "单位" if ranking["by"] == "unit" else "街道"
        ws = sheet(f"排名-{ranking['scheme']}-{by}"[:31], ["名次", "名称", "得分", "上月名次", "上月得分"],
                   [[r["rank"] or "", r["name"], r["score"] if r["score"] is not None else "",
                     r["before"]["rank"] or "", r["before"]["score"] if r["before"]["score"] is not None else ""]
                    for r in ranking["rows"]])
        ws.write(len(ranking["rows"]) + 2, 0, ranking["title"])
        if ranking["rows"]:
            chart = book.add_chart({"type": "bar"})
            last = len(ranking["rows"])
            for column, name in ((2, "本月"), (4, "上月")):
                chart.add_series({"name": name, "categories": [ws.name, 1, 1, last, 1],
                                  "values": [ws.name, 1, column, last, column]})
            chart.set_title({"name": ranking["title"]})
            ws.insert_chart(1, 7, chart)
    sheet("超期工作", ["承办单位", "事项", "街道", "状态", "派单", "办结时限", "办结", "超期小时"],
          [[t["unit_name"], t["item_title"] or t["item_no"], t["street_name"], t["status"], t["dispatched_at"],
            t["finish_by"], t["completed_at"] or "", round(t["late_hours"], 1)] for t in bulletin["late_tasks"]])
    ws = sheet("每月一题", ["热度", "诉求", "地点数", "未办结", "上月", "环比增量", "事项", "地点", "承办单位", "发现方式", "示例"],
               [[p["heat"], p["reports"], p["place_count"], p["open"], p["month_before"], p["growth"],
                 "、".join(f"{i['title'] or i['item_no']}({i['reports']})" for i in p["items"]),
                 "、".join(f"{x['name']}({x['reports']})" for x in p["places"]),
                 "、".join(f"{u['name']}({u['reports']})" for u in p["units"]),
                 "同一事项同一地点" if p["found_by"] == "item_place" else "相似诉求",
                 " / ".join(e["title"] for e in p["examples"])] for p in bulletin["problems"]])
    ws.write(len(bulletin["problems"]) + 2, 0, bulletin["heat"]["zh"])
    book.close()
    return out.getvalue()


def _default_ranking(bulletin: dict) -> dict | None:
    return next((r for r in bulletin["rankings"] if r["by"] == "unit"), None)


def _ranking_chart(bulletin: dict) -> dict | None:
    ranking = _default_ranking(bulletin)
    rows = [r for r in (ranking or {}).get("rows", []) if r["rank"]][:15]
    if not rows:
        return None
    names = [r["name"] for r in reversed(rows)]
    return {"width": 720, "height": 60 + 26 * len(rows), "option": {
        "textStyle": {"fontFamily": "Noto Sans CJK SC"}, "legend": {"top": 22},
        "grid": {"left": 200, "right": 40, "top": 50, "bottom": 10},
        "xAxis": {"type": "value", "max": 100}, "yAxis": {"type": "category", "data": names},
        "title": {"text": ranking["title"], "left": "center", "top": 0, "textStyle": {"fontSize": 13}},
        "series": [{"name": "本月", "type": "bar", "data": [r["score"] for r in reversed(rows)],
                    "label": {"show": True, "position": "right", "formatter": "{c}"}},
                   {"name": "上月", "type": "bar", "data": [r["before"]["score"] for r in reversed(rows)]}]}}


def _heat_chart(bulletin: dict) -> dict | None:
    problems = bulletin["problems"][:PROBLEMS_SHOWN]
    if not problems:
        return None
    labels = [f"{n}. {p['examples'][0]['title'][:18]}" for n, p in reversed(list(enumerate(problems, start=1)))]
    parts = (("诉求件数", "reports"), ("涉及地点", "place_count"), ("未办结", "open"), ("环比增量", "growth"))
    return {"width": 720, "height": 40 + 28 * len(problems), "option": {
        "textStyle": {"fontFamily": "Noto Sans CJK SC"}, "legend": {"top": 0},
        "grid": {"left": 260, "right": 30, "top": 30, "bottom": 10},
        "xAxis": {"type": "value"}, "yAxis": {"type": "category", "data": labels},
        "series": [{"name": title, "type": "bar", "stack": "heat", "data": [p[key] for p in reversed(problems)]}
                   for title, key in parts]}}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"
