"""`cityops demo`: the whole path on one machine — broker, worker, api (which owns the store), feed, summary."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from devtools.processes import Deployment
from devtools.shared_data import load_message_texts, load_reply_days
from devtools.simulator import simulate_departments
from infra.api import keys
from infra.kafka.admin import ensure_cityops_topics
from infra.kafka.broker import start_embedded_broker
from infra.kafka.feeder import feed
from infra.settings import Settings
from infra.terminal import sla_board, wait_for_stop_signal
from pipeline.clock import Clock
from pipeline.dutylists import CITY_TZ, load_registry
from pipeline.loadgen import generate
from pipeline.modelfiles import ensure_trained
from schemas.topics import TopicNames

DEMO_UNIT = "cgj"  # 市城市管理和综合执法局: the unit most of the demo's reports reach


def run_demo(settings: Settings, *, events: int, keep_running: bool, as_json: bool, seed: int,
             simulate_seconds: float = 60.0, clock_scale: float = 7200.0) -> dict:
    console = Console(stderr=as_json, quiet=as_json)
    demo_dir = (settings.data_dir / "demo").resolve()
    # The embedded broker keeps nothing across runs, so a store left from an earlier run would
    # describe topics that no longer exist: the demo starts its own store afresh every time.
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)
    run_tag = f"demo{int(time.time())}"
    # The demo's own keys, in its own keys file (gone with the run): a read-only one for screens and
    # curl, an intake one to post a ticket by hand, an operator one for the queue page, and one for the
    # busiest unit's workbench (城管, cgj). Printed below.
    keys_file = demo_dir / "api-keys.json"
    demo_keys = {scope: keys.issue(keys_file, f"demo-{scope}", [scope]).token for scope in ("read", "intake", "operator")}
    demo_keys["department"] = keys.issue(keys_file, "demo-cgj", [f"department:{DEMO_UNIT}"]).token
    # Days of working-time limits must pass in a minute: the run's clock starts at 09:00 on the next
    # working day and runs `clock_scale` times faster (7200: one real second is two hours).
    clock = Clock(clock_scale, dt.datetime.now(dt.timezone.utc), _next_working_morning(settings))
    env = {"CITYOPS_DATA_DIR": str(demo_dir), "CITYOPS_MODEL_DIR": str(_ensure_model(settings, console)),
           "CITYOPS_API_KEYS_FILE": str(keys_file), "CITYOPS_CLOCK_SCALE": str(clock.scale),
           "CITYOPS_CLOCK_ORIGIN": clock.origin.isoformat(), "CITYOPS_CLOCK_START": clock.start.isoformat(),
           "CITYOPS_SLA_CHECK_SECONDS": "0.5", "CITYOPS_BROKER_CHECK_SECONDS": "1"}
    broker = None
    if settings.kafka_bootstrap_servers:
        bootstrap, flavor, prefix = settings.kafka_bootstrap_servers, settings.kafka_flavor, f"{run_tag}."
        if settings.clickhouse_url:
            console.print("[yellow]CLICKHOUSE_URL is set: the demo writes into database "
                          f"{settings.clickhouse_database} there, and its figures include earlier rows.[/]")
    else:
        console.print("starting the embedded broker (Tansu, memory storage)…")
        broker = start_embedded_broker(log_file=demo_dir / "tansu.log")
        bootstrap, flavor, prefix = broker.bootstrap_servers, "tansu", ""
        env["CLICKHOUSE_URL"] = f"chdb://{demo_dir / 'clickhouse'}"
    env |= {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CITYOPS_KAFKA_FLAVOR": flavor, "CITYOPS_TOPIC_PREFIX": prefix}
    names = TopicNames(prefix)
    deployment = None
    try:
        ensure_cityops_topics(bootstrap, names, settings.topic_partitions)
        console.print("starting the worker (stream stages) and the api (ClickHouse sink, figures)…")
        deployment = Deployment.start(env, demo_dir, workers=1, api_key=demo_keys["read"])
        console.print(f"api at {deployment.api.url}/docs (read-only key {demo_keys['read']}); the wall screen: "
                      f"{deployment.api.url}/screen/; the operator queue: {deployment.api.url}/screen/queue "
                      f"(operator key {demo_keys['operator']}); the workbench of {DEMO_UNIT}: "
                      f"{deployment.api.url}/screen/unit (key {demo_keys['department']}); a reporter's lookup: "
                      f"{deployment.api.url}/screen/status", soft_wrap=True)
        # Departments answer from the first dispatch on, as they would.
        stop_simulating = threading.Event()
        simulated: dict = {}
        simulator = threading.Thread(target=lambda: simulated.update(simulate_departments(
            bootstrap, names, clock, load_reply_days(settings.messages_dir / "replied.jsonl"),
            seconds=None, seed=seed, should_stop=stop_simulating.is_set)), daemon=True)
        simulator.start()
        started = time.monotonic()
        ingested, stats = _feed_and_land(deployment, settings, console, bootstrap, names, clock, events=events,
                                         seed=seed, run_tag=run_tag, as_json=as_json)
        seconds = time.monotonic() - started
        console.print(f"simulated departments at work for {simulate_seconds:.0f} s more — "
                      f"{_describe(clock, simulate_seconds)} of the city's time: accepting, returning, finishing; "
                      "grid workers verifying; reporters scoring…")
        time.sleep(simulate_seconds)
        if not keep_running:
            stop_simulating.set()
            simulator.join(timeout=30)
        if not deployment.wait_settled(timeout=60):  # the last updates reach ClickHouse
            console.print("[yellow]a stage still had records to read after 60 s: the figures below may lag[/]")
        summary = _summary(deployment, ingested, stats, seconds, simulated)
        if as_json:
            print(json.dumps(summary, ensure_ascii=False))
        else:
            _print_summary(console, summary)
        if keep_running:
            _print_next_steps(console, deployment, demo_keys, run_tag, bootstrap, prefix,
                              f"{clock.now().astimezone(CITY_TZ):%Y-%m}")
            wait_for_stop_signal()
            stop_simulating.set()
        return summary
    finally:
        if deployment:
            deployment.stop()
        if broker:
            broker.stop()


def _feed_and_land(deployment: Deployment, settings: Settings, console: Console, bootstrap: str, names: TopicNames,
                   clock: Clock, *, events: int, seed: int, run_tag: str, as_json: bool) -> tuple[int, dict]:
    """Feed the generated reports (hotline texts real when the shared data is there) and wait until
    every one is in ClickHouse and routed: how many the broker took, and the figures then."""
    texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
    console.print(f"hotline texts: {f'{len(texts)} real citizen messages' if texts else 'built-in templates (shared data not found)'}")
    with Progress(console=console, transient=as_json) as progress:
        task = progress.add_task("feeding", total=events)
        ingested = feed(bootstrap, names, generate(events, seed=seed, run_tag=run_tag, texts=texts, start=clock.now()),
                        on_sent=lambda n: progress.advance(task, n))
        landed = progress.add_task("landing in ClickHouse", total=ingested)

        def all_landed(stats: dict) -> bool:
            progress.update(landed, completed=stats["clickhouse_incidents"] + stats["deadlettered"])
            # Dispatch lags the incident sink a little; wait for the routing too.
            routed = stats["dispatched"] + stats["manual"] + stats["merged"]
            return (stats["clickhouse_incidents"] + stats["deadlettered"] >= ingested
                    and routed >= stats["clickhouse_incidents"])

        return ingested, wait_with_progress(deployment, all_landed, ingested)


# The figures of the feed the summary repeats as they were once everything had landed.
LANDED_FIGURES = ("dispatched", "manual", "merged", "hotspots", "tanpai_refused", "dutylist_version", "deadlettered",
                  "clickhouse_incidents", "clickhouse_dispatches", "clickhouse_task_events", "dispatched_per_unit")
# And those of the tasks after the simulated departments' work.
AFTER_FIGURES = ("tasks_by_status", "task_events_by_kind", "alerts", "rerouted", "requeued", "returned_primary")


def _summary(deployment: Deployment, ingested: int, stats: dict, seconds: float, simulated: dict) -> dict:
    after, board = deployment.stats(), deployment.get_json("/sla/?by=unit")
    return {"ingested": ingested, "incidents": stats["clickhouse_incidents"],
            **{k: stats[k] for k in LANDED_FIGURES}, "seconds": round(seconds, 2),
            "events_per_second": round(ingested / seconds, 1), "simulated_until": deployment.worker.health()["now"],
            "simulated_task_events": dict(simulated), **{k: after[k] for k in AFTER_FIGURES},
            "sla": board["total"], "sla_by_unit": board["rows"]}


def _print_next_steps(console: Console, deployment: Deployment, demo_keys: dict[str, str], run_tag: str,
                      bootstrap: str, prefix: str, month: str) -> None:
    """`month`: the month the demo's clock is in (its tasks' month)."""
    url, read_key = deployment.api.url, demo_keys["read"]
    ticket = json.dumps({"ticket_no": f"{run_tag}-by-hand", "received_at": dt.datetime.now(CITY_TZ).isoformat(
        timespec="seconds"), "title": "路灯不亮", "text": "小区门口的路灯坏了好几天，晚上很黑"}, ensure_ascii=False)
    console.print(f"running, departments still simulated. The screen: {url}/screen/ — "
                  f"the api: {url}/docs, /stats/, /sla/?by=unit, /tasks/?status=open, /operator/queue, /model/ — "
                  f"e.g. with the read-only key:\n"
                  f"  curl -H 'Authorization: Bearer {read_key}' '{url}/operator/queue?limit=5'\n"
                  f"  CITYOPS_API_URL={url} CITYOPS_API_KEY={read_key} cityops dispatch queue\n"
                  f"post a hotline ticket with the intake key:\n"
                  f"  curl -H 'Authorization: Bearer {demo_keys['intake']}' -H 'Content-Type: application/json' "
                  f"-d '{ticket}' {url}/intake/hotline-tickets\n"
                  f"the month's bulletin (月度通报, 每月一题) as html, xlsx or pdf:\n"
                  f"  CITYOPS_API_URL={url} CITYOPS_API_KEY={read_key} cityops report bulletin "
                  f"--month {month} --format pdf\n"
                  f"worker /health/ and /metrics/ on {deployment.worker.url}/ — Ctrl-C stops\n"
                  f"publish a duty list: KAFKA_BOOTSTRAP_SERVERS={bootstrap} CITYOPS_TOPIC_PREFIX={prefix} "
                  "cityops dutylist publish FILE", soft_wrap=True)  # commands to copy: never wrapped


STALL_SECONDS = 60.0  # no progress for this long: say what is stuck instead of waiting on


def wait_with_progress(deployment: Deployment, done, ingested: int) -> dict:
    """Until `done(stats)`, for as long as the figures move: a loaded machine is slow, not stuck. With
    no progress for STALL_SECONDS, fail saying which count stopped and where the logs are."""
    last, moved_at = None, time.monotonic()
    while True:
        stats = deployment.wait_until(lambda s: True, timeout=30)
        if done(stats):
            return stats
        counts = (stats["clickhouse_incidents"], stats["deadlettered"], stats["dispatched"], stats["manual"],
                  stats["merged"])
        if counts != last:
            last, moved_at = counts, time.monotonic()
        elif time.monotonic() - moved_at > STALL_SECONDS:
            stored = stats["clickhouse_incidents"] + stats["deadlettered"]
            stuck = (f"the sink: {stored} of {ingested} events in ClickHouse" if stored < ingested else
                     f"routing: {sum(counts[2:])} of {stats['clickhouse_incidents']} incidents routed")
            raise RuntimeError(f"no progress for {STALL_SECONDS:.0f}s — stuck at {stuck}; worker ready: "
                               f"{stats['ready']}; logs in {deployment.log_dir}\n{deployment.log_tail(10)}")
        time.sleep(0.5)


def _next_working_morning(settings: Settings, run_of: int = 3) -> dt.datetime:
    """The first morning after today that begins `run_of` working days in a row: a demo started on a
    Thursday night in China would otherwise spend its simulated days on a weekend, where the working-
    time limits stand still and no task falls overdue."""
    calendar = settings.sla_clock().calendar
    day = dt.datetime.now(CITY_TZ).date() + dt.timedelta(days=1)
    while not all(calendar.is_workday(day + dt.timedelta(days=n)) for n in range(run_of)):
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, calendar.office_hours[0][0], CITY_TZ)


def _describe(clock: Clock, real_seconds: float) -> str:
    hours = real_seconds * clock.scale / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.0f} hours"


def _ensure_model(settings: Settings, console: Console) -> Path:
    """The model directory, with a model trained (offline, from the shared real data) if it has none."""
    model_dir = settings.model_dir.resolve()
    if ensure_trained(model_dir, settings.messages_dir, settings.dutylist_file, settings.units_file,
                      console.print) is None:
        console.print(f"[yellow]no shared data at {settings.shared_data_dir}: no text model, keywords alone "
                      "classify and more incidents go to the operator queue[/]")
    return model_dir


def _print_summary(console: Console, summary: dict) -> None:
    table = Table(title="cityops demo")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("ingested", "incidents", "dispatched", "merged", "manual", "hotspots", "tanpai_refused", "deadlettered",
                "clickhouse_incidents", "clickhouse_dispatches", "clickhouse_task_events", "dutylist_version",
                "seconds", "events_per_second"):
        table.add_row(key, str(summary[key]))
    console.print(table)
    registry = {u.code: u for u in load_registry().units}
    units = Table(title="dispatched per unit (primary)")
    units.add_column("unit")
    units.add_column("dispatches", justify="right")
    territorial = {u: n for u, n in summary["dispatched_per_unit"].items()
                   if u in registry and registry[u].kind in ("street", "community")}
    departments = [(u, n) for u, n in summary["dispatched_per_unit"].items() if u not in territorial]
    for unit, n in departments[:15]:
        units.add_row(f"{registry[unit].name} ({unit})" if unit in registry else unit, str(n))
    if len(departments) > 15:
        units.add_row(f"… {len(departments) - 15} more departments", str(sum(n for _, n in departments[15:])))
    if territorial:
        units.add_row(f"streets and towns, territorial items (属地, {len(territorial)} units)", str(sum(territorial.values())))
    console.print(units)
    _print_sla(console, summary)


def _print_sla(console: Console, summary: dict) -> None:
    until = dt.datetime.fromisoformat(summary["simulated_until"]).astimezone(CITY_TZ)
    moves = Table(title=f"tasks at {until:%Y-%m-%d %H:%M} city time")
    moves.add_column("status now")
    moves.add_column("tasks", justify="right")
    moves.add_column("events applied")
    moves.add_column("", justify="right")
    statuses = sorted(summary["tasks_by_status"].items(), key=lambda kv: -kv[1])
    events = sorted(summary["task_events_by_kind"].items(), key=lambda kv: -kv[1])
    for n in range(max(len(statuses), len(events))):
        status, count = statuses[n] if n < len(statuses) else ("", "")
        kind, applied = events[n] if n < len(events) else ("", "")
        moves.add_row(status, str(count), kind, str(applied))
    moves.add_row("re-routed after a return", str(summary["rerouted"]), "back to the operators", str(summary["requeued"]))
    for kind in ("prewarning", "overdue", "escalation", "hotspot"):
        moves.add_row(f"alerts: {kind}", str(summary["alerts"].get(kind, 0)))
    console.print(moves)
    if summary["sla"]:
        console.print(sla_board({"total": summary["sla"], "rows": summary["sla_by_unit"]}, columns=5))
