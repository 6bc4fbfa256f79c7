"""Figures and measurements: `sla` and `scores` ask the api; the others are offline."""

from __future__ import annotations

from pathlib import Path

import typer

from cityops.cli.common import (
    API_URL,
    AS_OF,
    SINCE,
    UNTIL,
    call_api,
    current_settings,
    offline_pipeline,
    print_json,
    say,
    window,
)

app = typer.Typer(help="Figures and measurements: `sla` and `scores` ask the api; the others are offline, on "
                       "real or generated data (no broker, no store).", no_args_is_help=True)


@app.command("sla")
def report_sla(
    by: str = typer.Option("unit", help="unit, item, street, source, grid, district, community, class, role — or total"),
    columns: int = typer.Option(6, help="how many of the busiest groups to show beside the total"),
    api: str = API_URL,
    as_json: bool = typer.Option(False, "--json", help="a JSON list, one object per group, names beside codes"),
    since: str = SINCE, until: str = UNTIL, as_of: str = AS_OF,
) -> None:
    """The SLA board from ClickHouse: 响应率, 处置率, 结案率, 按期结案率, 返工率, 解决率, 满意率, 督办, p50/p90 hours.

    按期结案率 (on_time_closure_rate) = tasks closed by their deadline / (tasks closed + open tasks
    already past it): an overdue open task counts as late. Rates are fractions; null when there
    is nothing to divide by. Hours are working hours (office hours, holidays and pauses excluded)."""
    import json
    import urllib.parse

    from rich.console import Console

    from infra.terminal import sla_board

    board = call_api(api, f"/sla/?{urllib.parse.urlencode({'by': 'unit' if by == 'total' else by, **window(since, until, as_of)})}")
    groups = ([board["total"] | {"name": "全部"}] if board["total"] else []) if by == "total" else board["rows"]
    if as_json:
        typer.echo(json.dumps(groups, ensure_ascii=False))
    elif board["total"] is None:
        typer.echo("no tasks yet")
    else:
        Console().print(sla_board(board, columns))


@app.command("scores")
def report_scores(
    scheme: str = typer.Option(None, help="a scheme of the scores file (default: its default; the sample city "
                                          "ships three-rates, pudong-7-3, whistle-30)"),
    by: str = typer.Option("unit", help="unit or street"),
    api: str = API_URL,
    as_json: bool = typer.Option(False, "--json", help="the api's JSON"),
    since: str = SINCE, until: str = UNTIL, as_of: str = AS_OF,
) -> None:
    """Department or street scores (考核), ranked, by a weighting scheme of the SLA rates."""
    import json
    import urllib.parse

    query = {"by": by, **({"scheme": scheme} if scheme else {}), **window(since, until, as_of)}
    result = call_api(api, f"/scores/?{urllib.parse.urlencode(query)}")
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"{result['title']} — {result['title_en']}")
    for row in result["rows"]:
        rank = f"{row['rank']:>3}" if row["rank"] else "  -"
        figure = "  n/a" if row["score"] is None else f"{row['score']:5.1f}"
        terms = ", ".join(f"{t['title']} {'n/a' if t['rate'] is None else format(t['rate'], '.0%')}" for t in row["terms"])
        typer.echo(f"{rank} {figure}  {row['name']} ({row['key']}, {row['tasks']} tasks): {terms}")


@app.command("bulletin")
def report_bulletin(
    month: str = typer.Option(..., help="the month, YYYY-MM (city time): the tasks dispatched in it"),
    fmt: str = typer.Option("html", "--format", help="html, xlsx, pdf (printed by Chromium) or json"),
    out: Path = typer.Option(None, help="the file to write (default: bulletin-<month>.<format> here)"),
    api: str = API_URL,
) -> None:
    """The monthly bulletin (月度通报), as the api makes it: the ranking under each score scheme beside the
    month before, the three rates and on-time closure per unit and street, returns and re-dispatches, the
    most overdue work, and 每月一题 (the month's recurring problems by heat). Needs a `read` key."""
    import re

    from pipeline.bulletin import MONTH_PATTERN

    if not re.fullmatch(MONTH_PATTERN, month):
        say(f"--month: a month as YYYY-MM between 1970 and 2199 (e.g. 2026-11), not {month!r}")
        raise typer.Exit(2)
    if fmt not in ("html", "xlsx", "pdf", "json"):
        say(f"--format: one of html, xlsx, pdf, json, not {fmt!r}")
        raise typer.Exit(2)
    body = call_api(api, f"/reports/bulletin?month={month}&format={fmt}", raw=True, timeout=300)
    target = out or Path(f"bulletin-{month}.{fmt}")
    target.write_bytes(body)
    typer.echo(f"wrote {target} ({len(body):,} bytes)")


@app.command("locations")
def report_locations(
    data: Path = typer.Option(None, help="JSONL with title and text (default: the real unlabelled messages)"),
    examples: int = typer.Option(3, help="examples to show per level"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """How much of real message text resolves to a community, street, district, or nothing."""
    import json

    from pipeline.dutylists import load_registry
    from pipeline.locate import Locator
    from pipeline.reports import locations_report

    path = data or current_settings().messages_dir / "unlabelled.jsonl"
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    report = locations_report(rows, Locator(load_registry()), examples)
    counts, shown = report["counts"], report["examples"]
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    typer.echo(f"{len(rows)} messages from {path}")
    for level, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {level:<30} {n:>6}  {n / len(rows):6.1%}")
        for ex in shown[level]:
            typer.echo(f"      {ex['title']}  → {ex['street'] or ex['district'] or '-'}  {ex['problem'] or ''}")


@app.command("routing")
def report_routing(
    events: int = typer.Option(5000, help="generated events (hotline texts are the real messages when present)"),
    seed: int = typer.Option(7),
    labelled: bool = typer.Option(False, "--labelled", help="also replay a held-out fifth of the labelled messages "
                                  "as hotline tickets (a model trained on the other four fifths, about a minute): "
                                  "the share dispatched automatically and how many of those are in the right class"),
    by_unit: bool = typer.Option(False, "--by-unit", help="also dispatch by unit on the real messages whose right "
                                 "unit is known (what `cityops eval dispatch` prints; about a minute)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Route a generated feed through normalise → classify → route, offline, and count the outcomes."""
    import datetime as dt

    from cityops.cli.model import dispatch_figures
    from devtools.shared_data import load_message_texts
    from pipeline.modelfiles import training_file
    from pipeline.reports import labelled_replay, routing_report

    settings = current_settings()
    book, locator, classifier = offline_pipeline(settings)
    now = dt.datetime.now(dt.timezone.utc)
    report = routing_report(book, locator, classifier, events=events, seed=seed, now=now,
                            texts=load_message_texts(settings.messages_dir / "unlabelled.jsonl"),
                            threshold=settings.classify_threshold)
    if labelled:
        data = training_file(settings.messages_dir)
        report["labelled_replay"] = labelled_replay(
            data, settings.messages_dir / "taxonomy.csv", settings.dutylist_file, settings.units_file, book, locator,
            threshold=settings.classify_threshold, now=now, say=say,
        ) if data else {"skipped": f"no labelled messages under {settings.messages_dir}"}
    if by_unit:
        figures = dispatch_figures(settings, None, True, 5)
        report["dispatch_by_unit"] = {name: {gate: {k: f[gate][k] for k in ("sent_share", "right_unit_of_sent",
                                                                            "right_item_of_sent", "sent_at_95_right_unit")}
                                             for gate in ("class_gate", "unit_gate") if gate in f}
                                      for name, f in figures["sets"].items()}
    print_json(report, as_json)


@app.command("cases")
def report_cases(
    data: Path = typer.Option(None, help="JSONL with user, time, title, text (default: the real unlabelled messages)"),
    hours: float = typer.Option(24, help="merge and hotspot window"),
    hotspot_threshold: int = typer.Option(3, help="reports of one item in one place that make a hotspot"),
    examples: int = typer.Option(5),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay real messages in time order: duplicate merges, near misses kept apart, hotspots."""
    import json

    from pipeline.reports import cases_report

    settings = current_settings()
    path = data or settings.messages_dir / "unlabelled.jsonl"
    book, locator, classifier = offline_pipeline(settings)
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    report = cases_report(rows, book, locator, classifier, hours=hours, hotspot_threshold=hotspot_threshold,
                          threshold=settings.classify_threshold, examples=examples)
    print_json(report, as_json)
