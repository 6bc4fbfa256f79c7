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


def run_demo(settings: Settings, *, events: int, keep_running: bool, as_json: bool, seed: int,
             simulate_seconds: float = 60.0, clock_scale: float = 7200.0) -> dict:
    console = Console(stderr=as_json, quiet=as_json)
    demo_dir = (settings.data_dir / "demo").resolve()
    # The embedded broker keeps nothing across runs, so a store left from an earlier run would
    # describe topics that no longer exist: the demo starts its own store afresh every time.
    shutil.rmtree(demo_dir, ignore_errors=True)
    demo_dir.mkdir(parents=True)
    run_tag = f"demo{int(time.time())}"

    broker = None
    # The demo's own keys, in its own keys file (gone with the run): a read-only one for screens and
    # curl, an intake one to post a ticket by hand, an operator one for the queue page. Printed below.
    keys_file = demo_dir / "api-keys.json"
    read_key = keys.issue(keys_file, "demo-read", ["read"]).token
    intake_key = keys.issue(keys_file, "demo-intake", ["intake"]).token
    operator_key = keys.issue(keys_file, "demo-operator", ["operator"]).token
    env = {"CITYOPS_DATA_DIR": str(demo_dir), "CITYOPS_MODEL_DIR": str(_ensure_model(settings, console)),
           "CITYOPS_API_KEYS_FILE": str(keys_file)}
    # Days of working-time limits must pass in a minute: the run's clock starts at 09:00 on the next
    # working day and runs `clock_scale` times faster (7200: one real second is two hours).
    clock = Clock(clock_scale, dt.datetime.now(dt.timezone.utc), _next_working_morning(settings))
    env |= {"CITYOPS_CLOCK_SCALE": str(clock.scale), "CITYOPS_CLOCK_ORIGIN": clock.origin.isoformat(),
            "CITYOPS_CLOCK_START": clock.start.isoformat(), "CITYOPS_SLA_CHECK_SECONDS": "0.5",
            "CITYOPS_BROKER_CHECK_SECONDS": "1"}
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
    worker = None
    try:
        ensure_cityops_topics(bootstrap, names, settings.topic_partitions)
        console.print("starting the worker (stream stages) and the api (ClickHouse sink, figures)…")
        worker = Deployment.start(env, demo_dir, workers=1, api_key=read_key)
        console.print(f"api at {worker.api.url}/docs (read-only key {read_key}); the wall screen: "
                      f"{worker.api.url}/screen/; the operator queue: {worker.api.url}/screen/queue "
                      f"(operator key {operator_key})", soft_wrap=True)

        # Departments answer from the first dispatch on, as they would.
        stop_simulating = threading.Event()
        simulated: dict = {}
        simulator = threading.Thread(target=lambda: simulated.update(simulate_departments(
            bootstrap, names, clock, load_reply_days(settings.messages_dir / "replied.jsonl"),
            seconds=None, seed=seed, should_stop=stop_simulating.is_set)), daemon=True)
        simulator.start()
        texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
        console.print(f"hotline texts: {f'{len(texts)} real citizen messages' if texts else 'built-in templates (shared data not found)'}")
        started = time.monotonic()
        with Progress(console=console, transient=as_json) as progress:
            task = progress.add_task("feeding", total=events)
            ingested = feed(bootstrap, names, generate(events, seed=seed, run_tag=run_tag, texts=texts,
                                                       start=clock.now()),
                            on_sent=lambda n: progress.advance(task, n))
            landed = progress.add_task("landing in ClickHouse", total=ingested)

            def all_landed(stats: dict) -> bool:
                progress.update(landed, completed=stats["clickhouse_incidents"] + stats["deadlettered"])
                # Dispatch lags the incident sink a little; wait for the routing too.
                routed = stats["dispatched"] + stats["manual"] + stats["merged"]
                return (stats["clickhouse_incidents"] + stats["deadlettered"] >= ingested
                        and routed >= stats["clickhouse_incidents"])

            stats = wait_with_progress(worker, all_landed, ingested)
        seconds = time.monotonic() - started
        console.print(f"simulated departments at work for {simulate_seconds:.0f} s more — "
                      f"{_describe(clock, simulate_seconds)} of the city's time: accepting, returning, finishing; "
                      "grid workers verifying; reporters scoring…")
        time.sleep(simulate_seconds)
        if not keep_running:
            stop_simulating.set()
            simulator.join(timeout=30)
        if not worker.wait_settled(timeout=60):  # the last updates reach ClickHouse
            console.print("[yellow]a stage still had records to read after 60 s: the figures below may lag[/]")
        after = worker.stats()
        board = worker.get_json("/sla/?by=unit")
        health = worker.worker.health()
        summary = {
            "ingested": ingested,
            "incidents": stats["clickhouse_incidents"],
            "dispatched": stats["dispatched"],
            "manual": stats["manual"],
            "merged": stats["merged"],
            "hotspots": stats["hotspots"],
            "tanpai_refused": stats["tanpai_refused"],
            "dutylist_version": stats["dutylist_version"],
            "deadlettered": stats["deadlettered"],
            "clickhouse_incidents": stats["clickhouse_incidents"],
            "clickhouse_dispatches": stats["clickhouse_dispatches"],
            "clickhouse_task_events": stats["clickhouse_task_events"],
            "dispatched_per_unit": stats["dispatched_per_unit"],
            "seconds": round(seconds, 2),
            "events_per_second": round(ingested / seconds, 1),
            "simulated_until": health["now"],
            "simulated_task_events": dict(simulated),
            "tasks_by_status": after["tasks_by_status"],
            "task_events_by_kind": after["task_events_by_kind"],
            "alerts": after["alerts"],
            "rerouted": after["rerouted"],
            "requeued": after["requeued"],
            "returned_primary": after["returned_primary"],
            "sla": board["total"],
            "sla_by_unit": board["rows"],
        }
        if as_json:
            print(json.dumps(summary, ensure_ascii=False))
        else:
            _print_summary(console, summary)
        if keep_running:
            ticket = json.dumps({"ticket_no": f"{run_tag}-by-hand", "received_at": dt.datetime.now(CITY_TZ).isoformat(
                timespec="seconds"), "title": "路灯不亮", "text": "小区门口的路灯坏了好几天，晚上很黑"}, ensure_ascii=False)
            console.print(f"running, departments still simulated. The screen: {worker.api.url}/screen/ — "
                          f"the api: {worker.api.url}/docs, /stats/, "
                          f"/sla/?by=unit, /tasks/?status=open, /operator/queue — e.g. with the read-only key:\n"
                          f"  curl -H 'Authorization: Bearer {read_key}' '{worker.api.url}/operator/queue?limit=5'\n"
                          f"  CITYOPS_API_URL={worker.api.url} CITYOPS_API_KEY={read_key} cityops dispatch queue\n"
                          f"post a hotline ticket with the intake key:\n"
                          f"  curl -H 'Authorization: Bearer {intake_key}' -H 'Content-Type: application/json' "
                          f"-d '{ticket}' {worker.api.url}/intake/hotline-tickets\n"
                          f"worker /health/ and /metrics/ on {worker.worker.url}/ — Ctrl-C stops\n"
                          f"publish a duty list: KAFKA_BOOTSTRAP_SERVERS={bootstrap} CITYOPS_TOPIC_PREFIX={prefix} "
                          "cityops dutylist publish FILE", soft_wrap=True)  # commands to copy: never wrapped
            wait_for_stop_signal()
            stop_simulating.set()
        return summary
    finally:
        if worker:
            worker.stop()
        if broker:
            broker.stop()


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
