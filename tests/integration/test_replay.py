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


BALTIMORE_COLUMNS = ["ServiceRequestNum", "SRType", "MethodReceived", "CreatedDate", "SRStatus", "StatusDate", "DueDate",
                     "CloseDate", "Agency", "LastActivity", "Outcome", "Address", "ZipCode", "Neighborhood", "Latitude",
                     "Longitude", "PoliceDistrict", "CouncilDistrict"]


def test_another_citys_export_replays_with_its_unit_names_and_each_bad_row_a_dead_letter(pipeline_env, start_worker,
                                                                                          tmp_path, monkeypatch):
    """A file shaped like Baltimore's 311 export (not NYC's): agency names with spaces and '&', a
    Chinese one, a row with a time that is no time and one with no number. Once a unit name with a
    space ended the whole run with a traceback."""
    from infra.replay import load_mapping
    from pipeline.replay import to_ticket, unit_code

    def row(n: int, agency: str, created: str = "03/02/2020 09:15:00 AM", closed: str = "03/03/2020 04:00:00 PM",
            number: str | None = None) -> dict:
        return dict(zip(BALTIMORE_COLUMNS, [number if number is not None else f"20-0000{n:04d}", "SW-Dirty Alley",
                                            "Phone", created, "Closed", closed, "03/09/2020 09:15:00 AM", closed,
                                            agency, "Close SR", "Cleaned", f"{n} N CHARLES ST", "21201",
                                            "Mount Vernon", "39.2976", "-76.6155", "Central", "11"], strict=True))

    agencies = ["Call Center", "Recreation & Parks", "Solid Waste", "DPW-Water", "市城管局"]
    rows = [row(n, agencies[n % len(agencies)]) for n in range(20)]
    rows += [row(90, "Call Center", created="31/31/2020 99:99"), row(91, "Solid Waste", number="")]
    replayed = tmp_path / "baltimore.csv"
    with replayed.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=BALTIMORE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    codes = {name: unit_code(name) for name in agencies}
    assert codes["DPW-Water"] == "DPW-Water" and codes["Call Center"].startswith("call-center-")
    assert codes["Recreation & Parks"].startswith("recreation-parks-") and codes["市城管局"].startswith("u-")
    assert to_ticket(load_mapping("baltimore311"), rows[1]).history.unit_name == "Recreation & Parks"

    deployment = start_worker(pipeline_env)
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "CITYOPS_TOPIC_PREFIX"):
        monkeypatch.setenv(name, pipeline_env[name])
    result = CliRunner().invoke(cli, ["replay", "--mapping", "baltimore311", str(replayed)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "sent 20 orders" in result.output and "refused 2" in result.output
    assert "refused 1 (dead-lettered): CreatedDate: not a time" in result.output
    assert "refused 1 (dead-lettered): ServiceRequestNum: empty" in result.output
    assert "not a time in the format %m/%d/%Y %I:%M:%S %p" in result.output and "31/31/2020" not in result.output
    stats = deployment.wait_until(lambda s: s["clickhouse_tasks"] == 20 and s["deadlettered"] == 2, timeout=120)
    assert stats["manual"] == 0
    board = {r["key"]: r["tasks"] for r in deployment.get_json("/sla/?by=unit")["rows"]}
    assert board == {codes[a]: 4 for a in agencies}
    letters = deployment.get_json("/stats/")
    assert letters["deadlettered"] == 2


# Set when a row is stored, not part of what it says (the stage path and the bulk path store at other times).
STORED_AT_COLUMNS = {"normalized_at", "stored_at", "refreshed_at", "version"}


def test_bulk_replay_stores_what_the_stages_store_and_leaves_open_orders_to_them(shared_data, pipeline_env,
                                                                                 start_worker, tmp_path, monkeypatch):
    micro = shared_data / "us311" / "311_nyc_subset_micro.csv"
    if not micro.is_file():
        pytest.skip(f"NYC 311 subset not found at {micro}")
    with micro.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Closed Date"] >= r["Created Date"] or not r["Closed Date"]][:600]
    replayed = tmp_path / "nyc.csv"
    with replayed.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    still_open = sum(1 for r in rows if not r["Closed Date"])
    assert still_open > 0

    # The stages: every order through the topics into the deployment's store.
    deployment = start_worker(pipeline_env)
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["replay", "--mapping", "us311", str(replayed)])
    assert result.exit_code == 0, result.output
    deployment.wait_until(lambda s: s["clickhouse_tasks"] == len(rows) and s["task_events_by_kind"].get("closed", 0)
                          == len(rows) - still_open, timeout=180)

    # In bulk, into a store of its own: the finished orders stored there, the open ones sent to the stages.
    monkeypatch.setenv("CLICKHOUSE_URL", f"chdb://{tmp_path / 'bulk-store'}")
    result = CliRunner().invoke(cli, ["replay", "--bulk", "--mapping", "us311", str(replayed)])
    assert result.exit_code == 0, result.output
    assert f"stored {len(rows) - still_open} finished orders" in result.output
    assert f"sent {still_open} to the hotline intake" in result.output
    deployment.stop()  # its store is read below

    from infra.store import Store

    def rows_of(store: Store, table: str, incident_ids: set[str]) -> list[tuple]:
        columns = [c for c in store._columns(table) if c not in STORED_AT_COLUMNS]
        return sorted(store.query(f"SELECT {', '.join(f'`{c}`' for c in columns)} FROM {{db}}.{table} FINAL "
                                  "WHERE incident_id IN %(ids)s", {"ids": sorted(incident_ids)}))

    with Store(f"chdb://{tmp_path / 'bulk-store'}") as bulk:
        finished = {r[0] for r in bulk.query("SELECT incident_id FROM {db}.incidents FINAL")}
        assert len(finished) == len(rows) - still_open
        bulk_rows = {table: rows_of(bulk, table, finished) for table in ("incidents", "dispatches", "tasks",
                                                                        "task_events")}
    with Store(pipeline_env["CLICKHOUSE_URL"]) as staged:
        for table, expected in bulk_rows.items():
            assert rows_of(staged, table, finished) == expected, table
    assert len(bulk_rows["task_events"]) == 5 * len(finished)  # dispatched, accepted, completed, verified, closed
