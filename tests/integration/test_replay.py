"""History replay on the real broker and store: NYC 311 requests go through the hotline intake and
the task stage with their own times, and the SLA board's figures per agency equal an independent
pandas computation over the same file (按期结案率: closed by the due date, of those closed and those
still open past it). A record that cannot be replayed is dead-lettered, not dropped."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from cityops.cli import cli

NYC_TIME = "%m/%d/%Y %I:%M:%S %p"


@pytest.fixture
def nyc_sample(shared_data):
    path = shared_data / "us311" / "311_nyc_sample.csv"
    if not path.is_file():
        pytest.skip(f"NYC 311 sample not found at {path}")
    return path


def expected_per_agency(path, now: dt.datetime) -> dict[str, dict]:
    """The figures from the file alone, with pandas."""
    frame = pd.read_csv(path, low_memory=False)
    zone = "America/New_York"
    times = {c: pd.to_datetime(frame[c], format=NYC_TIME).dt.tz_localize(zone, ambiguous="NaT")
             for c in ("Created Date", "Closed Date", "Due Date")}
    closed, due, created = times["Closed Date"], times["Due Date"], times["Created Date"]
    # Without a due date the duty list's standard limit (5 working days) applies; every such request
    # in this file closed within a day, so on time whatever the calendar: checked, not assumed.
    no_due = due.isna()
    assert ((closed[no_due] - created[no_due]) < pd.Timedelta(days=1)).all()
    frame["closed"] = closed.notna()
    frame["on_time"] = closed.notna() & (no_due | (closed <= due))
    frame["overdue_open"] = closed.isna() & due.notna() & (due < pd.Timestamp(now))
    per = frame.groupby("Agency").agg(tasks=("Unique Key", "size"), closed=("closed", "sum"),
                                      on_time=("on_time", "sum"), overdue_open=("overdue_open", "sum"))
    return {agency: {"tasks": int(r.tasks), "closed": int(r.closed), "overdue_open": int(r.overdue_open),
                     "on_time_closure_rate": round(r.on_time / (r.closed + r.overdue_open), 4)}
            for agency, r in per.iterrows()}


def test_replayed_nyc_figures_match_pandas_and_bad_rows_are_dead_lettered(nyc_sample, pipeline_env, start_worker,
                                                                          tmp_path, monkeypatch):
    # The sample plus one record whose creation time is not a time: it must be refused, and kept.
    with nyc_sample.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    broken = dict(rows[0], **{"Unique Key": "99999999", "Created Date": "yesterday"})
    replayed = tmp_path / "nyc.csv"
    with replayed.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([*rows, broken])

    deployment = start_worker(pipeline_env)
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "CITYOPS_TOPIC_PREFIX"):
        monkeypatch.setenv(name, pipeline_env[name])
    result = CliRunner().invoke(cli, ["replay", "--mapping", "us311", str(replayed)])
    assert result.exit_code == 0, result.output
    assert f"sent {len(rows)} orders" in result.output
    assert "refused 1 (dead-lettered): Created Date: not a time in the format" in result.output
    assert "yesterday" not in result.output  # the reason names the column, never its value

    closed = sum(1 for r in rows if r["Closed Date"])
    stats = deployment.wait_until(lambda s: s["clickhouse_tasks"] == len(rows) and s["deadlettered"] == 1
                                  and s["task_events_by_kind"].get("closed", 0) == closed, timeout=180)
    assert stats["alerts"] == {}  # history raises no SLA alerts, though every open order is long overdue
    assert stats["manual"] == 0

    now = dt.datetime.now(dt.timezone.utc)
    board = json.loads(CliRunner().invoke(cli, ["report", "sla", "--by", "unit", "--json", "--as-of", now.isoformat(),
                                                "--api", deployment.api.url]).stdout)
    got = {g["key"]: {k: g[k] for k in ("tasks", "closed", "overdue_open", "on_time_closure_rate")} for g in board}
    assert got == expected_per_agency(nyc_sample, now)

    # Times are the record's: the first request came in on 1 March 2011 (New York) and kept its due date.
    [task] = [t for t in deployment.get_json("/tasks/?unit=DOF&limit=1000") if t["dispatched_at"].startswith(
        "2011-03-01T19:27:57")]
    assert task["finish_by"].startswith("2011-03-22T18:27:57") and task["status"] == "closed"
