"""Duty lists (职责清单): check a file, explain an item, publish a version."""

from __future__ import annotations

from pathlib import Path

import typer

from cityops.cli.common import current_settings, require_kafka, unit_name

app = typer.Typer(help="Duty lists (职责清单): check a file, explain an item, publish a version.",
                           no_args_is_help=True)


@app.command("check")
def dutylist_check(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="duty-list YAML file"),
    units: Path = typer.Option(None, help="registry units.yaml (grids.geojson beside it); default: the sample city"),
) -> None:
    """Validate FILE against the city registry; print every problem with its line. Exit 1 on any."""
    from pipeline.dutylists import load_registry, read_dutylist

    dutylist, found = read_dutylist(file.read_text(encoding="utf-8"), load_registry(units))
    for problem in found:
        typer.echo(problem.describe(str(file)), err=True)
    if found:
        typer.echo(f"{len(found)} problem(s) in {file}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{file}: ok — version {dutylist.version}, {len(dutylist.items)} items, "
               f"{len(dutylist.local_lists)} local lists")


@app.command("show")
def dutylist_show(
    item: str = typer.Argument(..., help="item number, e.g. CJ-001"),
    file: Path = typer.Option(None, exists=True, dir_okay=False, help="duty-list file; default: the sample city's"),
    units: Path = typer.Option(None, help="registry units.yaml; default: the sample city"),
) -> None:
    """Explain ITEM: who handles it where, on what basis, within what time."""
    from pipeline.dutylists import load_dutybook

    book = load_dutybook(file, units)
    city_item = book.item(item)
    rows = list(book.where_handled(item))
    if all(found is None for _, found in rows):
        typer.echo(f"no item {item} in list {book.version}", err=True)
        raise typer.Exit(1)

    def who(found) -> str:
        primary = "the street where it happens (属地)" if found.scope == "territorial" else unit_name(book, found.primary_unit)
        cooperating = "、".join("属地街道" if u == "@street" else unit_name(book, u) for u in found.cooperating_units)
        return (f"主责 {primary}" + (f"; 配合 {cooperating}" if cooperating else "")
                + f"; accept within {found.accept_within_hours:g} working h, finish within "
                f"{found.finish_within_days:g} working days; basis {found.legal_basis}")

    typer.echo(f"list {book.version}")
    if city_item:
        typer.echo(f"{city_item.number} {city_item.title} [{' / '.join(city_item.category)}]")
        typer.echo(f"  city-wide: {who(city_item)}")
    for jurisdiction, found in rows[1:]:
        where = f"{unit_name(book, jurisdiction)}" + (" and its streets" if book.units[jurisdiction].kind == "district" else "")
        if found is None:
            typer.echo(f"  {where}: removed by its local list")
        else:
            typer.echo(f"  {where} (local list): {found.title}: {who(found)}")


@app.command("publish")
def dutylist_publish(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="duty-list YAML file"),
    by: str = typer.Option("", help="who publishes it (kept in the audit table)"),
    units: Path = typer.Option(None, help="registry units.yaml; default: the sample city"),
) -> None:
    """Make FILE the list in force: running workers switch to it without a restart."""
    import datetime as dt

    from infra.kafka.feeder import publish
    from pipeline.dutylists import load_registry, read_dutylist
    from schemas import DutyListVersion
    from schemas.topics import TopicNames

    settings = current_settings()
    text = file.read_text(encoding="utf-8")
    dutylist, found = read_dutylist(text, load_registry(units))
    if found:
        for problem in found:
            typer.echo(problem.describe(str(file)), err=True)
        typer.echo(f"not published: {len(found)} problem(s)", err=True)
        raise typer.Exit(1)
    require_kafka(settings)
    version = dutylist.version
    message = DutyListVersion(version=version, published_at=dt.datetime.now(dt.timezone.utc), published_by=by, yaml=text)
    topic = TopicNames(settings.topic_prefix).dutylists
    offset = publish(settings, topic, version, message)
    typer.echo(f"published {version} to {topic} at offset {offset}; workers route new incidents by it")
