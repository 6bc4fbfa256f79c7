"""The monthly bulletin on two months of the city's real replied messages, replayed in bulk into a real
chDB store and read through a running `cityops api`: its figures are `report sla` and `report scores`
for the same month, the month's repeated problems are listed with their counts, and the HTML, the
workbook and the PDF come out (the PDF's pages as PNG in var/screenshots/ to look at)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from cityops.cli import cli
from infra.api import keys
from tests.integration.browser import SCREENSHOTS, chromium, open_page

MONTH, BEFORE = "2018-11", "2018-10"


def _cli(*args: str, env: dict[str, str]) -> str:
    run = subprocess.run([sys.executable, "-m", "cityops.cli", *args], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_the_bulletin_of_a_replayed_month(shared_data, pipeline_env, start_worker, tmp_path, monkeypatch):
    rows = [json.loads(line) for line in (shared_data / "zh-gov-messages" / "replied.jsonl").open(encoding="utf-8")]
    months = [r for r in rows if r["time"][:7] in (MONTH, BEFORE)]
    replayed = tmp_path / "two-months.jsonl"
    replayed.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in months), encoding="utf-8")
    store_url = f"chdb://{tmp_path / 'store'}"
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CLICKHOUSE_URL", store_url)
    result = CliRunner().invoke(cli, ["replay", "--bulk", "--mapping", "zh-gov-replied", str(replayed)])
    assert result.exit_code == 0, result.output

    # The orders bulk left to the stages (for the operator, or still open) go through a worker into the
    # same store, which the deployment's api then owns.
    env = pipeline_env | {"CLICKHOUSE_URL": store_url}
    deployment = start_worker(env)
    deployment.wait_until(lambda s: s["clickhouse_incidents"] == len(months), timeout=120)
    token = keys.issue(Path(env["CITYOPS_API_KEYS_FILE"]), "leadership", ["read"]).token
    cli_env = env | {"CITYOPS_API_KEY": token, "CITYOPS_API_URL": deployment.api.url}
    out = tmp_path / "bulletin.json"
    _cli("report", "bulletin", "--month", MONTH, "--format", "json", "--out", str(out), env=cli_env)
    bulletin = json.loads(out.read_text(encoding="utf-8"))
    window = ["--since", bulletin["since"], "--until", bulletin["until"], "--as-of", bulletin["as_of"]]

    # The figures are `report sla` and `report scores` for the same month, row for row.
    by_unit = json.loads(_cli("report", "sla", "--by", "unit", "--json", *window, env=cli_env))
    assert bulletin["units"] == by_unit and sum(r["tasks"] for r in by_unit) == bulletin["total"]["tasks"] > 50
    by_street = json.loads(_cli("report", "sla", "--by", "street", "--json", *window, env=cli_env))
    assert bulletin["streets"] == by_street
    for ranking in bulletin["rankings"]:
        scores = json.loads(_cli("report", "scores", "--scheme", ranking["scheme"], "--by", ranking["by"],
                                 "--json", *window, env=cli_env))
        assert [{k: v for k, v in r.items() if k != "before"} for r in ranking["rows"]] == scores["rows"]
    earlier = json.loads(_cli("report", "scores", "--by", "unit", "--json", "--since", f"{BEFORE}-01T00:00:00+08:00",
                              "--until", bulletin["since"], "--as-of", bulletin["since"], env=cli_env))
    default = next(r for r in bulletin["rankings"] if r["scheme"] == earlier["scheme"] and r["by"] == "unit")
    ranked_before = {r["key"]: r["rank"] for r in earlier["rows"]}
    assert all(r["before"]["rank"] == ranked_before.get(r["key"]) for r in default["rows"])
    assert bulletin["reports"] == sum(1 for r in months if r["time"].startswith(MONTH))

    # 每月一题: a message sent again and again in the month (the same title three times or more) is a
    # listed problem, counted at least that often; the heat is the stated sum.
    repeated = {title: n for title, n in Counter(r["title"] for r in months if r["time"].startswith(MONTH)).items()
                if n >= 3}
    assert repeated  # the month holds some (五一桥, 国城国际)
    for title, n in repeated.items():
        problem = next((p for p in bulletin["problems"] if any(e["title"] == title for e in p["examples"])), None)
        assert problem is not None and problem["reports"] >= n, (title, bulletin["problems"])
    for p in bulletin["problems"]:
        assert p["heat"] == p["reports"] + p["place_count"] + p["open"] + p["growth"]
        assert p["growth"] == max(0, p["reports"] - p["month_before"])

    # The documents: the HTML names the problems, the workbook has its sheets, the PDF renders.
    documents = {}
    for fmt in ("html", "xlsx", "pdf"):
        documents[fmt] = tmp_path / f"bulletin.{fmt}"
        _cli("report", "bulletin", "--month", MONTH, "--format", fmt, "--out", str(documents[fmt]), env=cli_env)
    html = documents["html"].read_text(encoding="utf-8")
    assert all(title in html for title in repeated) and "<svg" in html and "每月一题" in html
    with zipfile.ZipFile(documents["xlsx"]) as book:
        workbook = book.read("xl/workbook.xml").decode()
    assert all(f'name="{sheet}"' in workbook for sheet in ("承办单位", "街道", "超期工作", "每月一题"))
    assert documents["pdf"].read_bytes().startswith(b"%PDF")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("bulletin-*.png"):
        old.unlink()
    subprocess.run(["pdftoppm", "-png", "-r", "60", str(documents["pdf"]), str(SCREENSHOTS / "bulletin")],
                   check=True)
    assert len(list(SCREENSHOTS.glob("bulletin-*.png"))) >= 2

    # The busiest unit's workbench over the replayed history: its tasks (all of them, finished ones too).
    busiest = max(bulletin["units"], key=lambda r: r["tasks"])
    clerk = keys.issue(Path(env["CITYOPS_API_KEYS_FILE"]), "replayed-clerk", [f"department:{busiest['key']}"]).token
    with chromium() as (browser, errors):
        page = open_page(browser, errors, f"{deployment.api.url}/screen/unit", height=1100)
        page.fill("#key", clerk)
        page.click("#login")
        page.wait_for_selector("body[data-loaded=true]")
        page.select_option("#f-status", "")
        page.click("#apply")
        page.wait_for_selector("#tasks tbody tr[data-status=closed]")
        page.click("#tasks tbody tr:first-child")
        page.wait_for_selector("#detail:not([hidden]) #d-timeline li")
        assert page.inner_text("#unit-name") == busiest["name"]
        page.screenshot(path=str(SCREENSHOTS / "unit-replayed.png"), full_page=True)
    assert not errors, errors
