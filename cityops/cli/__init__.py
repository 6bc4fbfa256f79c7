"""The `cityops` command: the composition root, one module per command group. Each command imports
what it needs inside it, so `cityops --help` and the offline reports start without Kafka, Faust or
ClickHouse clients; the settings are read once per run (`common.current_settings`)."""

from __future__ import annotations

import logging

import typer

from cityops.cli import bench, common, dispatch, dutylist, keys, model, report, run, schemas, simulate

cli = typer.Typer(help="cityops: classify city incident reports, dispatch them by duty list, track SLA in ClickHouse.",
                  no_args_is_help=True, add_completion=False)


@cli.callback()
def run_with_fresh_settings() -> None:
    common.begin_run()


cli.registered_commands += run.app.registered_commands  # broker, worker, api, demo, replay: top-level commands
cli.add_typer(dutylist.app, name="dutylist")
cli.add_typer(dispatch.app, name="dispatch")
cli.add_typer(keys.app, name="keys")
cli.add_typer(schemas.app, name="schemas")
cli.add_typer(simulate.app, name="simulate")
cli.add_typer(report.app, name="report")
cli.add_typer(model.app, name="model")
cli.add_typer(model.eval_app, name="eval")
cli.add_typer(bench.app, name="bench")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every connection at INFO; keep its warnings only.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    # kafka-python 3 warns whenever one poll of its selector takes over 100 ms: on a busy 2-core
    # machine that is every few seconds, and it says nothing an operator can act on.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    cli()
