"""Operator actions on incidents, through the api."""

from __future__ import annotations

import typer

from cityops.cli.common import call_api

app = typer.Typer(help="Operator actions on incidents.", no_args_is_help=True)


@app.command("manual")
def dispatch_manual(
    incident_id: str = typer.Argument(..., help="an incident waiting in the operator queue"),
    item: str = typer.Option(..., help="the duty item it falls under, e.g. CJ-050"),
    unit: list[str] = typer.Option([], help="send to this unit instead of the ones the item names (repeat; "
                                   "first is primary). Streets the list does not name are refused (no 摊派)."),
    note: str = typer.Option("", help="why"),
    api: str = typer.Option("http://127.0.0.1:8080", envvar="CITYOPS_API_URL", help="the api's address"),
) -> None:
    """Dispatch an incident from the operator queue under ITEM (through the api, with an operator key
    in CITYOPS_API_KEY: the decision is recorded under that key's name)."""
    sent = call_api(api, f"/operator/queue/{incident_id}/dispatch", {"item_no": item, "units": unit, "note": note},
                    scope="operator")
    typer.echo(f"decision {sent['decision_id']} sent: the worker dispatches {incident_id} under {item}")


@app.command("close")
def dispatch_close(
    incident_id: str = typer.Argument(..., help="an incident waiting in the operator queue"),
    reason: str = typer.Option(..., help="answered (咨询/直接答复), invalid (无效) or duplicate (重复)"),
    note: str = typer.Option(..., help="what was answered, why invalid, which ticket it repeats"),
    api: str = typer.Option("http://127.0.0.1:8080", envvar="CITYOPS_API_URL", help="the api's address"),
) -> None:
    """Close an incident from the operator queue without a dispatch (operator key in CITYOPS_API_KEY)."""
    sent = call_api(api, f"/operator/queue/{incident_id}/close", {"reason": reason, "note": note}, scope="operator")
    typer.echo(f"decision {sent['decision_id']} sent: {incident_id} leaves the queue")


@app.command("queue")
def dispatch_queue(
    api: str = typer.Option("http://127.0.0.1:8080", envvar="CITYOPS_API_URL",
                            help="the api's address (`cityops demo` prints it)"),
    limit: int = typer.Option(20, help="show at most this many, oldest first"),
) -> None:
    """List incidents waiting for an operator, with the reason and the candidate items."""
    from rich.console import Console
    from rich.table import Table

    page = call_api(api, f"/operator/queue?limit={limit}")
    rows = page["items"]
    table = Table(title=f"operator queue: {page['total']} waiting" + (f", the oldest {len(rows)}" if
                                                                       page["total"] > len(rows) else ""))
    table.add_column("incident", no_wrap=True, min_width=32)  # copied into `dispatch manual`: never cut
    for column in ("where", "title", "reason", "candidates"):
        table.add_column(column)
    for row in rows[:limit]:
        table.add_row(row["incident_id"], row["street"] or row["district"] or "?", row["title"][:30],
                      row["reason"][:60], " ".join(row["candidates"]))
    Console().print(table)
