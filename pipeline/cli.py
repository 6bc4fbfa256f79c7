"""The `cityops` command.

This module is the composition root: it is the one place in `pipeline/` that reaches into
`agents/` and `infra/`, and it does so inside each command so `pipeline` stays importable
(and testable) without Kafka or ClickHouse clients.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

cli = typer.Typer(help="cityops: classify city incident reports, dispatch them by duty list, track SLA in ClickHouse.",
                  no_args_is_help=True, add_completion=False)


@cli.command()
def broker(port: int = typer.Option(9092, help="loopback port to listen on")) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory storage) until Ctrl-C."""
    from infra.broker import start_embedded_broker

    from infra.demo import wait_for_stop_signal

    b = start_embedded_broker(port)
    typer.echo(f"embedded broker ready: KAFKA_BOOTSTRAP_SERVERS={b.bootstrap_servers}  (memory only; Ctrl-C stops it)")
    try:
        wait_for_stop_signal()
    finally:
        b.stop()


@cli.command()
def worker() -> None:
    """Run the stream worker (all agents, the ClickHouse sink, /stats and /metrics on the web port)."""
    import faust

    from agents.app import create_app
    from agents.topics import TopicNames
    from infra.broker import ensure_topics, start_embedded_broker
    from infra.settings import Settings
    from infra.store import Store
    from pipeline.dutylists import load_dutybook

    settings = Settings()
    embedded = None
    if not settings.kafka_bootstrap_servers:
        embedded = start_embedded_broker(log_file=_data_path(settings.data_dir, "tansu.log"))
        settings = settings.model_copy(update={"kafka_bootstrap_servers": embedded.bootstrap_servers, "kafka_flavor": "tansu"})
        typer.echo(f"started embedded broker at {embedded.bootstrap_servers}")
    try:
        ensure_topics(settings.kafka_bootstrap_servers, TopicNames(settings.topic_prefix).all(), settings.topic_partitions)
        store = Store(settings.resolved_clickhouse_url(), settings.clickhouse_database)
        store.migrate()
        app = create_app(settings, store, load_dutybook())
        faust.Worker(app, loglevel="info").execute_from_commandline()
    finally:
        if embedded:
            embedded.stop()


@cli.command()
def demo(
    events: int = typer.Option(2000, help="how many intake events to feed"),
    exit_: bool = typer.Option(False, "--exit", help="exit after the summary instead of running until Ctrl-C"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object instead of the table"),
    seed: int = typer.Option(7, help="load generator seed"),
) -> None:
    """Start broker, worker and store; feed EVENTS realistic reports; wait until all are in ClickHouse."""
    from infra.demo import run_demo
    from infra.settings import Settings

    run_demo(Settings(), events=events, keep_running=not exit_, as_json=as_json, seed=seed)


def _data_path(data_dir: Path, name: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir / name


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every connection at INFO; keep its warnings only.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    cli()


if __name__ == "__main__":
    main()
