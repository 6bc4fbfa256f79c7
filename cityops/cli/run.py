"""The processes and the jobs that feed them: `broker`, `worker`, `api`, `demo`, `replay`."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from cityops.cli.common import current_settings, data_path, offline_stages, require_kafka

app = typer.Typer()


@app.command()
def broker(port: int = typer.Option(9092, help="loopback port to listen on")) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory storage) until Ctrl-C."""
    from infra.kafka.broker import start_embedded_broker
    from infra.terminal import wait_for_stop_signal

    b = start_embedded_broker(port)
    typer.echo(f"embedded broker ready: KAFKA_BOOTSTRAP_SERVERS={b.bootstrap_servers}  (memory only; Ctrl-C stops it)")
    try:
        wait_for_stop_signal()
    finally:
        b.stop()


@app.command()
def worker() -> None:
    """Run the stream stages (one Faust app). Start N of them on the same topics to share the work;
    /health and /metrics on CITYOPS_WORKER_WEB_PORT."""
    import os
    import sys

    import faust

    from agents.supervision import RestartInPlace
    from cityops.worker import create_worker_app
    from infra.kafka.admin import ensure_cityops_topics
    from infra.kafka.broker import start_embedded_broker
    from infra.kafka.security import kafka_python_security
    from pipeline.dutylists import load_dutybook
    from pipeline.textmodel import TopClassModel
    from schemas.topics import TopicNames

    settings = current_settings()
    logging.getLogger(__name__).info("settings: %s", settings.as_dict())  # secrets and URL passwords masked
    embedded = None
    if not settings.kafka_bootstrap_servers:
        embedded = start_embedded_broker(log_file=data_path(settings.data_dir, "tansu.log"))
        settings = settings.model_copy(update={"kafka_bootstrap_servers": embedded.bootstrap_servers, "kafka_flavor": "tansu"})
        typer.echo(f"started embedded broker at {embedded.bootstrap_servers}")
    try:
        ensure_cityops_topics(settings.kafka_bootstrap_servers, TopicNames(settings.topic_prefix),
                              settings.topic_partitions, settings.topic_replication_factor,
                              security=kafka_python_security(settings))
        model = TopClassModel.load(settings.model_dir)
        if model is None:
            logging.getLogger(__name__).warning("no trained model in %s: keywords alone classify, so more incidents "
                                                "go to the operators; run `cityops model train`", settings.model_dir)
        app = create_worker_app(settings, load_dutybook(settings.dutylist_file, settings.units_file), model)
        try:
            faust.Worker(app, loglevel="info").execute_from_commandline()
        except SystemExit:
            if not isinstance(app.crash_reason, RestartInPlace) or embedded:
                raise
            # Begin again as a fresh process (Faust's state is not made to be reset in place): same
            # pid, same arguments; the topics are recreated above, the tables read from the log.
            typer.echo(f"{app.crash_reason}; starting again", err=True)
            os.execv(sys.executable, [sys.executable, "-m", "cityops.cli", "worker"])
    finally:
        if embedded:
            embedded.stop()


@app.command()
def api() -> None:
    """Serve the HTTP face on CITYOPS_API_HOST:CITYOPS_API_PORT (127.0.0.1:8080): intake, department and
    operator actions, figures, SLA board (OpenAPI at /docs). With KAFKA_BOOTSTRAP_SERVERS set it also runs the ClickHouse sink; on the
    embedded default (chDB) it is the one process that opens the store."""
    from infra.api.app import serve

    settings = current_settings()
    logging.getLogger(__name__).info("settings: %s", settings.as_dict())
    serve(settings)


@app.command()
def demo(
    events: int = typer.Option(2000, help="how many intake events to feed"),
    exit_: bool = typer.Option(False, "--exit", help="exit after the summary instead of running until Ctrl-C"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    seed: int = typer.Option(7, help="load generator seed"),
    simulate_seconds: float = typer.Option(60, help="real seconds of simulated department work before the summary"),
    clock_scale: float = typer.Option(7200, help="simulated seconds per real second (7200: a second is two hours)"),
) -> None:
    """Start broker, worker and api (which owns the store); feed EVENTS realistic reports; let simulated departments work on
    them on a fast clock; print the routing and the SLA board from ClickHouse."""
    from devtools.demo import run_demo

    try:
        run_demo(current_settings(), events=events, keep_running=not exit_, as_json=as_json, seed=seed,
                 simulate_seconds=simulate_seconds, clock_scale=clock_scale)
    except (RuntimeError, TimeoutError) as exc:  # a stalled or dead process: say what, not a traceback
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def replay(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="historical work orders: CSV or JSON lines"),
    mapping: str = typer.Option(..., help="a mapping file (MAPPING.yaml), or the name of one that ships: us311, "
                                          "zh-gov-replied"),
    limit: int = typer.Option(None, min=1, help="replay the first N records only"),
    bulk: bool = typer.Option(False, help="store finished orders straight into ClickHouse (CLICKHOUSE_URL; on the "
                                          "embedded store, with `cityops api` stopped): thousands a second; open ones "
                                          "and the operator's still go through the stages"),
) -> None:
    """Import historical work orders through the same topics and stages, keeping their own times
    (came in, due, accepted, closed, unit, category, text, place), so the figures describe the
    history. At full speed; a second run of the same file changes nothing. A record that cannot be
    replayed goes to the dead-letter topic with its row number and why."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from infra.kafka.intake_client import IntakeClient
    from infra.kafka.security import kafka_python_security
    from infra.replay import MappingError, count_records, load_mapping, replay_file

    settings = current_settings()
    try:
        chosen = load_mapping(mapping)
        total = count_records(file, chosen)
    except (MappingError, UnicodeDecodeError) as exc:
        typer.echo(f"cannot replay: {exc}", err=True)
        raise typer.Exit(2) from None
    servers = require_kafka(settings)
    columns = (TextColumn(f"replaying {file.name} ({chosen.name})"), BarColumn(), MofNCompleteColumn(),
               TextColumn("refused {task.fields[refused]}"), TimeRemainingColumn())
    with IntakeClient(servers, topic_prefix=settings.topic_prefix, **kafka_python_security(settings)) as client, \
            Progress(*columns, transient=False) as bar:
        task = bar.add_task("replay", total=min(total, limit) if limit else total, refused=0)

        def progress(r) -> None:
            bar.update(task, completed=r.rows, refused=r.refused_rows)

        try:
            if bulk:
                result = _bulk_replay(settings, client, file, chosen, limit, progress)
            else:
                result = replay_file(client, file, chosen, limit=limit, progress=progress)
        except MappingError as exc:
            typer.echo(f"cannot replay: {exc}", err=True)
            raise typer.Exit(2) from None
    rate = result.rows / result.seconds if result.seconds else 0.0
    if bulk:
        typer.echo(f"stored {result.stored} finished orders straight into the store and sent {result.sent} to the "
                   f"hotline intake (open, or for the operator) in {result.seconds:.1f} s ({rate:.0f} orders/s), "
                   f"refused {result.refused_rows} (each a dead letter with its row and column)")
    else:
        typer.echo(f"sent {result.sent} orders in {result.seconds:.1f} s ({rate:.0f}/s) to the hotline intake, "
                   f"refused {result.refused_rows} (each a dead letter with its row and column); the figures fill in "
                   "as the workers take them (`cityops report sla`)")
    for reason, n in sorted(result.refused.items(), key=lambda r: -r[1]):
        typer.echo(f"  refused {n} (dead-lettered): {reason}", err=True)


def _bulk_replay(settings, client, file: Path, mapping, limit: int | None, progress):
    """`replay --bulk`: the store opened here (the embedded one only while no api holds it)."""
    from infra.replay import bulk_replay
    from infra.store import Store
    from infra.store.client import StoreUnavailable

    stages = offline_stages(settings)
    try:
        store = Store(settings.resolved_clickhouse_url())
    except StoreUnavailable as exc:
        typer.echo(f"cannot replay in bulk: {exc}; stop `cityops api` first, or replay without --bulk", err=True)
        raise typer.Exit(2) from None
    with store:
        store.migrate()
        return bulk_replay(client, store, file, mapping, stages, limit=limit, progress=progress)
