"""Benchmarks that print figures (record them in BENCHMARKS.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from cityops.cli.common import current_settings, data_path, offline_stages, print_json, say, trained_model

app = typer.Typer(help="Benchmarks that print figures (record them in BENCHMARKS.md).", no_args_is_help=True)


@app.command("classify")
def bench_classify(
    messages: int = typer.Option(3000, help="real messages to classify (repeated if the file has fewer)"),
    batch: int = typer.Option(200, help="batch size, as the dispatcher uses"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Classification throughput on one core: messages per second, model and keywords, in batches."""
    from devtools.bench.classify import run_classify_bench
    from devtools.shared_data import load_message_texts
    from pipeline.dutylists import load_dutybook

    settings = current_settings()
    texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
    if not texts:
        say("needs the real messages in ../shared/data")
        raise typer.Exit(2)
    model = trained_model(settings)
    book = load_dutybook(settings.dutylist_file, settings.units_file)
    print_json(run_classify_bench(model, book, texts, messages=messages, batch=batch), as_json)


@app.command("replay")
def bench_replay_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="historical work orders: CSV or JSON lines"),
    mapping: str = typer.Option("us311", help="a mapping file or the name of a shipped one"),
    limit: int = typer.Option(None, min=1, help="the first N records only"),
    bulk: bool = typer.Option(False, help="`replay --bulk`: finished orders straight into a store of their own"),
    as_json: bool = typer.Option(False, "--json", help="one line of JSON"),
) -> None:
    """History replay at full speed on a fresh deployment (embedded broker unless KAFKA_BOOTSTRAP_SERVERS):
    orders sent per second, and per second until all are stored with their whole history."""
    import tempfile

    from devtools.bench.pipeline import run_replay_bench

    settings = current_settings()
    stages = offline_stages(settings) if bulk else None  # (trains the model first when there is none)
    if stages is None:
        trained_model(settings)
    with tempfile.TemporaryDirectory(prefix="cityops-bench-replay-") as work:
        figures = run_replay_bench(file, mapping, Path(work), settings.model_dir, limit=limit, bulk=stages, log=say)
    print_json(figures, as_json)


@app.command("store")
def bench_store_command(
    events: int = typer.Option(10_000_000, min=1000, help="task events to generate (about five per task)"),
    repeats: int = typer.Option(40, min=5, help="runs per query"),
    as_json: bool = typer.Option(False, "--json", help="one line of JSON"),
) -> None:
    """The screen's queries (SLA board, overdue list, trends, a grid's tasks, a timeline, /stats/) over
    a synthetic history in a fresh chDB store: p50/p95 per query."""
    import tempfile

    from devtools.bench.store import run_store_bench
    from pipeline.dutylists import load_dutybook

    settings = current_settings()
    book = load_dutybook(settings.dutylist_file, settings.units_file)
    with tempfile.TemporaryDirectory(prefix="cityops-bench-store-") as work:
        figures = run_store_bench(events, repeats, Path(work), book, log=say)
    print_json(figures, as_json)


@app.command("pipeline")
def bench_pipeline_command(
    events: int = typer.Option(5000, help="events in the burst each contender gets"),
    rates: str = typer.Option("200,1000", help="offered rates (events/s) for the latency runs, comma-separated"),
    rate_seconds: float = typer.Option(5.0, help="how long each offered rate is held"),
    seed: int = typer.Option(7),
    workers: int = typer.Option(1, help="`cityops worker` processes sharing the 4 partitions"),
    profile: bool = typer.Option(False, help="sample the worker with py-spy during the burst (collapsed stacks in "
                                 "var/bench/worker-profile.txt) and print where its time went"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The full pipeline against a raw aiokafka loop and a naive one-hop Faust agent, on one broker (the
    embedded one, or KAFKA_BOOTSTRAP_SERVERS), same generated events; latency at fixed rates; CPU; RSS."""
    import tempfile

    from devtools.shared_data import load_message_texts

    try:
        offered = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        typer.echo("--rates: comma-separated numbers, e.g. 200,1000", err=True)
        raise typer.Exit(2) from None
    if events < 1 or workers < 1 or any(r <= 0 for r in offered):
        typer.echo("--events, --workers and every rate must be positive", err=True)
        raise typer.Exit(2)
    settings = current_settings()
    model = trained_model(settings)
    texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
    from devtools.bench.pipeline import run_pipeline_bench

    with tempfile.TemporaryDirectory(prefix="cityops-bench-") as work:
        figures = run_pipeline_bench(events, offered, rate_seconds, seed, Path(work),
                                     settings.model_dir.resolve() if model is not None else None, texts,
                                     profile=data_path(settings.data_dir / "bench", "worker-profile.txt")
                                     if profile else None, workers=workers, log=say)
    print_json(figures, as_json)


@app.command("soak")
def bench_soak_command(
    minutes: float = typer.Option(30.0, help="how long the steady load runs"),
    rate: float = typer.Option(20.0, help="reports fed per second"),
    clock_scale: float = typer.Option(7200.0, help="city seconds per real second (7200: a real minute is 5 city days, "
                                      "so most reports are finished within minutes)"),
    retention_hours: float = typer.Option(24.0, help="CITYOPS_RETENTION_HOURS of the run (city hours; at least the "
                                          "24 h merge and hotspot windows)"),
    warmup_minutes: float = typer.Option(10.0, help="real minutes before RSS must be flat: reports must have been "
                                         "finished and then forgotten"),
    sample_seconds: float = typer.Option(30.0, help="how often RSS and the tables are sampled"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Memory under steady load: a deployment fed RATE reports a second on a scaled clock, departments
    simulated, a short retention; prints the worker's RSS over time and whether it stays within ±10%
    of its mean after the warm-up (also the api's and the embedded broker's, which keeps everything)."""
    import tempfile

    from devtools.bench.soak import run_soak_bench
    from devtools.shared_data import load_message_texts, load_reply_days

    if min(minutes, rate, clock_scale, sample_seconds) <= 0 or warmup_minutes < 0:
        typer.echo("--minutes, --rate, --clock-scale and --sample-seconds must be positive", err=True)
        raise typer.Exit(2)
    if retention_hours < 24:
        typer.echo("--retention-hours: at least 24 (the merge and hotspot windows)", err=True)
        raise typer.Exit(2)
    settings = current_settings()
    model = trained_model(settings)
    texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
    reply_days = load_reply_days(settings.messages_dir / "replied.jsonl")
    with tempfile.TemporaryDirectory(prefix="cityops-bench-soak-") as work:
        figures = run_soak_bench(minutes, rate, clock_scale, retention_hours, warmup_minutes, Path(work),
                                 settings.model_dir.resolve() if model is not None else None, texts, reply_days,
                                 sample_seconds=sample_seconds, log=say)
    print_json(figures, as_json)


@app.command("api")
def bench_api_command(
    requests: int = typer.Option(2000, help="intake POSTs in each run"),
    concurrency: int = typer.Option(20, help="requests in flight in the concurrent run"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Latency of an intake POST answered after the broker's acknowledgement (p50/p90/p99), one at a
    time and CONCURRENCY at once, on a live api and broker (the embedded one, or KAFKA_BOOTSTRAP_SERVERS)."""
    import tempfile

    from devtools.bench.api import run_api_bench

    if requests < 1 or concurrency < 1:
        typer.echo("--requests and --concurrency must be positive", err=True)
        raise typer.Exit(2)
    with tempfile.TemporaryDirectory(prefix="cityops-bench-api-") as work:
        figures = run_api_bench(requests, concurrency, Path(work), "主干道路灯坏了一个星期，晚上很黑，希望尽快修理", log=say)
    print_json(figures, as_json)
