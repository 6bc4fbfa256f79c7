"""Simulated actors, for demos and load tests."""

from __future__ import annotations

import typer

from cityops.cli.common import current_settings, require_kafka

app = typer.Typer(help="Simulated actors, for demos and load tests.", no_args_is_help=True)


@app.command("departments")
def simulate_departments_command(
    seconds: float = typer.Option(None, help="stop after this many real seconds (default: until Ctrl-C)"),
    seed: int = typer.Option(11, help="random seed"),
) -> None:
    """Departments accept, return and finish dispatched tasks; grid workers verify; reporters score.

    Finish delays follow the real reply times in replied.jsonl. Point it at the workers' broker and
    topic prefix; give it the same CITYOPS_CLOCK_* settings as the workers (`cityops demo` does)."""
    import logging
    import signal
    import threading

    from devtools.shared_data import load_reply_days
    from devtools.simulator import simulate_departments
    from schemas.topics import TopicNames

    logging.basicConfig(level=logging.INFO)
    settings = current_settings()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reply_days = load_reply_days(settings.messages_dir / "replied.jsonl")
    if not reply_days:
        typer.echo(f"no replied.jsonl under {settings.messages_dir}: finish delays are drawn from an exponential "
                   "with the real data's median (11 days) instead", err=True)
    sent = simulate_departments(require_kafka(settings), TopicNames(settings.topic_prefix), settings.clock(),
                                reply_days, seconds=seconds, seed=seed, should_stop=stop.is_set)
    typer.echo(f"sent {sum(sent.values())} task events: " + ", ".join(f"{k} {n}" for k, n in sent.most_common()))
