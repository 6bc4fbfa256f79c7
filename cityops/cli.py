"""The `cityops` command: the composition root. Each command imports what it needs inside it, so
`cityops --help` and the offline reports start without Kafka, Faust or ClickHouse clients.
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
    from devtools.demo import wait_for_stop_signal
    from infra.kafka.broker import start_embedded_broker

    b = start_embedded_broker(port)
    typer.echo(f"embedded broker ready: KAFKA_BOOTSTRAP_SERVERS={b.bootstrap_servers}  (memory only; Ctrl-C stops it)")
    try:
        wait_for_stop_signal()
    finally:
        b.stop()


@cli.command()
def worker() -> None:
    """Run the stream stages (one Faust app). Start N of them on the same topics to share the work;
    /health and /metrics on CITYOPS_WORKER_WEB_PORT."""
    import os
    import sys

    import faust

    from cityops.worker import RestartInPlace, create_worker_app
    from infra.kafka.admin import ensure_cityops_topics
    from infra.kafka.broker import start_embedded_broker
    from infra.kafka.security import kafka_python_security
    from infra.settings import Settings
    from pipeline.dutylists import load_dutybook
    from pipeline.textmodel import TopClassModel
    from schemas.topics import TopicNames

    settings = Settings()
    logging.getLogger(__name__).info("settings: %s", settings.as_dict())  # secrets and URL passwords masked
    embedded = None
    if not settings.kafka_bootstrap_servers:
        embedded = start_embedded_broker(log_file=_data_path(settings.data_dir, "tansu.log"))
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


@cli.command()
def api() -> None:
    """Serve the HTTP face on CITYOPS_API_HOST:CITYOPS_API_PORT (127.0.0.1:8080): intake, department and
    operator actions, figures, SLA board (OpenAPI at /docs). With KAFKA_BOOTSTRAP_SERVERS set it also runs the ClickHouse sink; on the
    embedded default (chDB) it is the one process that opens the store."""
    from infra.api.app import serve
    from infra.settings import Settings

    settings = Settings()
    logging.getLogger(__name__).info("settings: %s", settings.as_dict())
    serve(settings)


@cli.command()
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
    from infra.settings import Settings

    try:
        run_demo(Settings(), events=events, keep_running=not exit_, as_json=as_json, seed=seed,
                 simulate_seconds=simulate_seconds, clock_scale=clock_scale)
    except (RuntimeError, TimeoutError) as exc:  # a stalled or dead process: say what, not a traceback
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(1) from None


@cli.command()
def replay(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="historical work orders: CSV or JSON lines"),
    mapping: str = typer.Option(..., help="a mapping file (MAPPING.yaml), or the name of one that ships: us311, "
                                          "zh-gov-replied"),
    limit: int = typer.Option(None, min=1, help="replay the first N records only"),
) -> None:
    """Import historical work orders through the same topics and stages, keeping their own times
    (came in, due, accepted, closed, unit, category, text, place), so the figures describe the
    history. At full speed; a second run of the same file changes nothing. A record that cannot be
    replayed goes to the dead-letter topic with its row number and why."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from infra.kafka.intake_client import IntakeClient
    from infra.kafka.security import kafka_python_security
    from infra.replay import MappingError, count_records, load_mapping, replay_file
    from infra.settings import Settings

    settings = Settings()
    try:
        chosen = load_mapping(mapping)
        total = count_records(file, chosen)
    except (MappingError, UnicodeDecodeError) as exc:
        typer.echo(f"cannot replay: {exc}", err=True)
        raise typer.Exit(2) from None
    servers = _require_kafka(settings)
    columns = (TextColumn(f"replaying {file.name} ({chosen.name})"), BarColumn(), MofNCompleteColumn(),
               TextColumn("refused {task.fields[refused]}"), TimeRemainingColumn())
    with IntakeClient(servers, topic_prefix=settings.topic_prefix, **kafka_python_security(settings)) as client, \
            Progress(*columns, transient=False) as bar:
        task = bar.add_task("replay", total=min(total, limit) if limit else total, refused=0)
        try:
            result = replay_file(client, file, chosen, limit=limit, progress=lambda r: bar.update(
                task, completed=r.rows, refused=r.refused_rows))
        except MappingError as exc:
            typer.echo(f"cannot replay: {exc}", err=True)
            raise typer.Exit(2) from None
    rate = result.sent / result.seconds if result.seconds else 0.0
    typer.echo(f"sent {result.sent} orders in {result.seconds:.1f} s ({rate:.0f}/s) to the hotline intake, "
               f"refused {result.refused_rows} (each a dead letter with its row and column); the figures fill in "
               "as the workers take them (`cityops report sla`)")
    for reason, n in sorted(result.refused.items(), key=lambda r: -r[1]):
        typer.echo(f"  refused {n} (dead-lettered): {reason}", err=True)


dutylist_cli = typer.Typer(help="Duty lists (职责清单): check a file, explain an item, publish a version.",
                           no_args_is_help=True)
cli.add_typer(dutylist_cli, name="dutylist")


@dutylist_cli.command("check")
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


@dutylist_cli.command("show")
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
        primary = "the street where it happens (属地)" if found.scope == "territorial" else _unit_name(book, found.primary_unit)
        cooperating = "、".join("属地街道" if u == "@street" else _unit_name(book, u) for u in found.cooperating_units)
        return (f"主责 {primary}" + (f"; 配合 {cooperating}" if cooperating else "")
                + f"; accept within {found.accept_within_hours:g} working h, finish within "
                f"{found.finish_within_days:g} working days; basis {found.legal_basis}")

    typer.echo(f"list {book.version}")
    if city_item:
        typer.echo(f"{city_item.number} {city_item.title} [{' / '.join(city_item.category)}]")
        typer.echo(f"  city-wide: {who(city_item)}")
    for jurisdiction, found in rows[1:]:
        where = f"{_unit_name(book, jurisdiction)}" + (" and its streets" if book.units[jurisdiction].kind == "district" else "")
        if found is None:
            typer.echo(f"  {where}: removed by its local list")
        else:
            typer.echo(f"  {where} (local list): {found.title}: {who(found)}")


@dutylist_cli.command("publish")
def dutylist_publish(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="duty-list YAML file"),
    by: str = typer.Option("", help="who publishes it (kept in the audit table)"),
    units: Path = typer.Option(None, help="registry units.yaml; default: the sample city"),
) -> None:
    """Make FILE the list in force: running workers switch to it without a restart."""
    import datetime as dt

    from infra.kafka.feeder import publish
    from infra.settings import Settings
    from pipeline.dutylists import load_registry, read_dutylist
    from schemas import DutyListVersion
    from schemas.topics import TopicNames

    settings = Settings()
    text = file.read_text(encoding="utf-8")
    dutylist, found = read_dutylist(text, load_registry(units))
    if found:
        for problem in found:
            typer.echo(problem.describe(str(file)), err=True)
        typer.echo(f"not published: {len(found)} problem(s)", err=True)
        raise typer.Exit(1)
    _require_kafka(settings)
    version = dutylist.version
    message = DutyListVersion(version=version, published_at=dt.datetime.now(dt.timezone.utc), published_by=by, yaml=text)
    topic = TopicNames(settings.topic_prefix).dutylists
    offset = publish(settings, topic, version, message)
    typer.echo(f"published {version} to {topic} at offset {offset}; workers route new incidents by it")


dispatch_cli = typer.Typer(help="Operator actions on incidents.", no_args_is_help=True)
cli.add_typer(dispatch_cli, name="dispatch")


@dispatch_cli.command("manual")
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
    sent = _api(api, f"/operator/queue/{incident_id}/dispatch", {"item_no": item, "units": unit, "note": note},
                    scope="operator")
    typer.echo(f"decision {sent['decision_id']} sent: the worker dispatches {incident_id} under {item}")


@dispatch_cli.command("close")
def dispatch_close(
    incident_id: str = typer.Argument(..., help="an incident waiting in the operator queue"),
    reason: str = typer.Option(..., help="answered (咨询/直接答复), invalid (无效) or duplicate (重复)"),
    note: str = typer.Option(..., help="what was answered, why invalid, which ticket it repeats"),
    api: str = typer.Option("http://127.0.0.1:8080", envvar="CITYOPS_API_URL", help="the api's address"),
) -> None:
    """Close an incident from the operator queue without a dispatch (operator key in CITYOPS_API_KEY)."""
    sent = _api(api, f"/operator/queue/{incident_id}/close", {"reason": reason, "note": note}, scope="operator")
    typer.echo(f"decision {sent['decision_id']} sent: {incident_id} leaves the queue")


@dispatch_cli.command("queue")
def dispatch_queue(
    api: str = typer.Option("http://127.0.0.1:8080", envvar="CITYOPS_API_URL",
                            help="the api's address (`cityops demo` prints it)"),
    limit: int = typer.Option(20, help="show at most this many, oldest first"),
) -> None:
    """List incidents waiting for an operator, with the reason and the candidate items."""
    from rich.console import Console
    from rich.table import Table

    page = _api(api, f"/operator/queue?limit={limit}")
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


keys_cli = typer.Typer(help="API keys for `cityops api`: one per integration, with scopes, stored hashed.",
                       no_args_is_help=True)
cli.add_typer(keys_cli, name="keys")


@keys_cli.command("issue")
def keys_issue(
    name: str = typer.Option(..., help="who holds it: the vendor, the department's system, the desk"),
    scope: list[str] = typer.Option(..., help="intake | operator | read | department:<unit code> (repeat)"),
    replace: bool = typer.Option(False, help="revoke the live keys of the same name first"),
    signed: bool = typer.Option(False, help="its requests must be signed (Standard Webhooks): prints the secret"),
) -> None:
    """Issue a key and print it once: only its hash is kept (CITYOPS_API_KEYS_FILE). A running api
    takes it on its next request."""
    from pydantic import ValidationError

    from infra.api import keys
    from infra.settings import Settings

    path = Settings().resolved_api_keys_file()
    try:
        key, token, signing_secret = keys.issue(path, name, scope, replace=replace, signed=signed)
    except ValidationError as exc:
        typer.echo(f"cannot issue the key: {exc.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"issued key {key.key_id} ({key.name}: {', '.join(key.scopes)}) in {path}; it is shown only now:", err=True)
    typer.echo(token)
    if signing_secret:
        typer.echo("signing secret (sign every request with it; `cityops keys rotate` rolls it):", err=True)
        typer.echo(signing_secret)


@keys_cli.command("list")
def keys_list() -> None:
    """The keys in the file: id, name, scopes, when issued and revoked (never a secret)."""
    from infra.api import keys
    from infra.settings import Settings

    for key in keys.read(Settings().resolved_api_keys_file()).keys:
        revoked = f"  revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else ""
        signed = f"  signed ({len(key.signing_secrets)} secret(s))" if key.signing_secrets else ""
        typer.echo(f"{key.key_id}  {key.name}  {','.join(key.scopes)}  issued {key.created_at:%Y-%m-%d %H:%M}"
                   f"{signed}{revoked}")


@keys_cli.command("rotate")
def keys_rotate(key_id: str = typer.Argument(..., help="the key id (`cityops keys list`)")) -> None:
    """A new signing secret for a key; the previous one stays valid beside it until the next rotation."""
    from infra.api import keys
    from infra.settings import Settings

    try:
        secret = keys.rotate_signing_secret(Settings().resolved_api_keys_file(), key_id)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    typer.echo("new signing secret (the previous one stays valid until the next rotation):", err=True)
    typer.echo(secret)


@keys_cli.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key id (`cityops keys list`)")) -> None:
    """Revoke a key: the api refuses it from its next request on."""
    from infra.api import keys
    from infra.settings import Settings

    try:
        key = keys.revoke(Settings().resolved_api_keys_file(), key_id)
    except KeyError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"revoked {key.key_id} ({key.name})")


schemas_cli = typer.Typer(help="The message contracts.", no_args_is_help=True)
cli.add_typer(schemas_cli, name="schemas")


@schemas_cli.command("export")
def schemas_export(folder: Path = typer.Argument(None, help="where to write; default: schemas/json in the checkout")) -> None:
    """Write a JSON Schema file per message other systems send (intake reports, task events, rulings)."""
    from schemas import jsonschema

    for path in jsonschema.export(folder or jsonschema.FOLDER):
        typer.echo(path)


simulate_cli = typer.Typer(help="Simulated actors, for demos and load tests.", no_args_is_help=True)
cli.add_typer(simulate_cli, name="simulate")


@simulate_cli.command("departments")
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
    from infra.settings import Settings
    from schemas.topics import TopicNames

    logging.basicConfig(level=logging.INFO)
    settings = Settings()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reply_days = load_reply_days(settings.messages_dir / "replied.jsonl")
    if not reply_days:
        typer.echo(f"no replied.jsonl under {settings.messages_dir}: finish delays are drawn from an exponential "
                   "with the real data's median (11 days) instead", err=True)
    sent = simulate_departments(_require_kafka(settings), TopicNames(settings.topic_prefix), settings.clock(),
                                reply_days, seconds=seconds, seed=seed, should_stop=stop.is_set)
    typer.echo(f"sent {sum(sent.values())} task events: " + ", ".join(f"{k} {n}" for k, n in sent.most_common()))


def _offline_pipeline(settings):
    """The duty book, locator and classifier a worker would use, for offline reports."""
    from pipeline.classify import Classifier
    from pipeline.dutylists import load_dutybook
    from pipeline.locate import Locator
    from pipeline.textmodel import TopClassModel

    book = load_dutybook(settings.dutylist_file, settings.units_file)
    return book, Locator(book.registry), Classifier(book, TopClassModel.load(settings.model_dir))


def _api(base: str, path: str, body: dict | None = None, scope: str = "read"):
    """GET (POST with `body`) from `cityops api` with the key in CITYOPS_API_KEY; a clear message
    (exit 2) instead of a traceback."""
    import json
    import os
    import urllib.error
    import urllib.request

    key = os.environ.get("CITYOPS_API_KEY", "")
    request = urllib.request.Request(
        f"{base.rstrip('/')}{path}", data=None if body is None else json.dumps(body, ensure_ascii=False).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        hint = (f" (set CITYOPS_API_KEY to a key with the {scope} scope: `cityops keys issue`)"
                if exc.code in (401, 403) else "")
        problem = json.load(exc)
        fields = "".join(f"\n  {e['field']}: {e['message']}" for e in problem.get("errors", []))
        typer.echo(f"{base}{path}: {exc.code} {problem.get('detail', exc.reason)}{hint}{fields}", err=True)
    except OSError as exc:
        typer.echo(f"cannot reach the api at {base} ({exc}); is `cityops api` (or `cityops demo`) running?", err=True)
    raise typer.Exit(2)


def _require_kafka(settings) -> str:
    if not settings.kafka_bootstrap_servers:
        typer.echo("set KAFKA_BOOTSTRAP_SERVERS to the broker the workers use (`cityops demo` prints it)", err=True)
        raise typer.Exit(2)
    return settings.kafka_bootstrap_servers


def _unit_name(book, code: str) -> str:
    unit = book.units.get(code)
    return f"{unit.name}({code})" if unit else code


report_cli = typer.Typer(help="Figures and measurements: `sla` and `scores` ask the api; the others are offline, on "
                              "real or generated data (no broker, no store).", no_args_is_help=True)
cli.add_typer(report_cli, name="report")
API_URL = typer.Option("http://127.0.0.1:8080", envvar="CITYOPS_API_URL", help="the api's address (`cityops demo` prints it)")


def _window(since: str | None, until: str | None, as_of: str | None) -> dict[str, str]:
    return {k: v for k, v in (("since", since), ("until", until), ("as_of", as_of)) if v}


SINCE = typer.Option(None, help="only tasks dispatched at or after this ISO time")
UNTIL = typer.Option(None, help="only tasks dispatched before this ISO time")
AS_OF = typer.Option(None, "--as-of", help="the figures as of this ISO time (what was overdue then)")


@report_cli.command("sla")
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

    from devtools.demo import sla_board

    board = _api(api, f"/sla/?{urllib.parse.urlencode({'by': 'unit' if by == 'total' else by, **_window(since, until, as_of)})}")
    groups = ([board["total"] | {"name": "全部"}] if board["total"] else []) if by == "total" else board["rows"]
    if as_json:
        typer.echo(json.dumps(groups, ensure_ascii=False))
    elif board["total"] is None:
        typer.echo("no tasks yet")
    else:
        Console().print(sla_board(board, columns))


@report_cli.command("scores")
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

    query = {"by": by, **({"scheme": scheme} if scheme else {}), **_window(since, until, as_of)}
    result = _api(api, f"/scores/?{urllib.parse.urlencode(query)}")
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"{result['title']} — {result['title_en']}")
    for row in result["rows"]:
        rank = f"{row['rank']:>3}" if row["rank"] else "  -"
        figure = "  n/a" if row["score"] is None else f"{row['score']:5.1f}"
        terms = ", ".join(f"{t['title']} {'n/a' if t['rate'] is None else format(t['rate'], '.0%')}" for t in row["terms"])
        typer.echo(f"{rank} {figure}  {row['name']} ({row['key']}, {row['tasks']} tasks): {terms}")


@report_cli.command("locations")
def report_locations(
    data: Path = typer.Option(None, help="JSONL with title and text (default: the real unlabelled messages)"),
    examples: int = typer.Option(3, help="examples to show per level"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """How much of real message text resolves to a community, street, district, or nothing."""
    import json

    from infra.settings import Settings
    from pipeline.dutylists import load_registry
    from pipeline.locate import Locator

    path = data or Settings().messages_dir / "unlabelled.jsonl"
    locator = Locator(load_registry())
    counts: dict[str, int] = {}
    shown: dict[str, list] = {}
    rows = [json.loads(line) for line in path.open(encoding="utf-8")]
    for row in rows:
        where = locator.resolve(text=f"{row.get('title', '')} {row.get('text', '')}")
        level = where.level if not (where.level == "district" and where.problem) else "district (streets ambiguous)"
        counts[level] = counts.get(level, 0) + 1
        if len(shown.setdefault(level, [])) < examples:
            shown[level].append({"title": row.get("title", "")[:40], "street": where.street, "district": where.district,
                                 "problem": where.problem})
    report = {"n": len(rows), "share": {k: round(v / len(rows), 4) for k, v in sorted(counts.items())},
              "counts": counts, "examples": shown}
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    typer.echo(f"{len(rows)} messages from {path}")
    for level, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {level:<30} {n:>6}  {n / len(rows):6.1%}")
        for ex in shown[level]:
            typer.echo(f"      {ex['title']}  → {ex['street'] or ex['district'] or '-'}  {ex['problem'] or ''}")


@report_cli.command("routing")
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
    import json
    import re
    from collections import Counter

    from devtools.shared_data import load_message_texts
    from infra.settings import Settings
    from pipeline.loadgen import generate
    from pipeline.normalize import IntakeError, parse_intake, to_incident
    from pipeline.route import route
    from schemas import ManualReview

    settings = Settings()
    book, locator, classifier = _offline_pipeline(settings)
    texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
    now = dt.datetime.now(dt.timezone.utc)
    outcome: Counter = Counter()
    reasons: Counter = Counter()
    primary_kind: Counter = Counter()
    by_source: Counter = Counter()
    no_street: Counter = Counter()
    for event in generate(events, seed=seed, texts=texts, registry=book.registry):
        try:
            incident = to_incident(parse_intake(event.source, event.value), salt="report", now=now, locator=locator,
                                   dutylist_version=book.version)
        except IntakeError:
            outcome["dead-lettered"] += 1
            continue
        decision = route(incident, classifier.classify(incident), book, now=now, threshold=settings.classify_threshold)
        if isinstance(decision, ManualReview):
            outcome["manual"] += 1
            # The kind of reason, without the item numbers and figures that make each one unique.
            kind = re.sub(r"\d+(\.\d+)?", "N", re.sub(r"[A-Z]{2}-\d{3}", "<item>", decision.reason.split(" (")[0]))
            reasons["摊派 refused" if decision.tanpai_refused else kind.split(":")[0][:60]] += 1
            if "is territorial" in decision.reason:  # 属地 item, and no street to give it to: why not
                no_street[f"{incident.source}: located by {incident.location_method}"] += 1
            by_source[(incident.source, "manual")] += 1
        else:
            outcome["dispatched"] += 1
            primary_kind[book.units[decision[0].unit].kind] += 1
            by_source[(incident.source, "dispatched")] += 1
            if decision[0].local_list:
                outcome["dispatched under a local list"] += 1
    hotline = by_source[("hotline", "dispatched")] + by_source[("hotline", "manual")]
    report = {"events": events, "outcome": dict(outcome), "primary_unit_kind": dict(primary_kind),
              "hotline_auto_share": round(by_source[("hotline", "dispatched")] / hotline, 4) if hotline else None,
              "manual_reasons": dict(reasons.most_common(8)),
              "territorial_without_street": dict(no_street.most_common()),
              "by_source": {f"{s}/{o}": n for (s, o), n in sorted(by_source.items())}}
    if labelled:
        report["labelled_replay"] = _labelled_replay(settings, book, locator, now)
    if by_unit:
        figures = _dispatch_figures(settings, None, True, 5)
        report["dispatch_by_unit"] = {name: {gate: {k: f[gate][k] for k in ("sent_share", "right_unit_of_sent",
                                                                            "right_item_of_sent", "sent_at_95_right_unit")}
                                             for gate in ("class_gate", "unit_gate") if gate in f}
                                      for name, f in figures["sets"].items()}
    typer.echo(json.dumps(report, ensure_ascii=False, indent=None if as_json else 2))


def _labelled_replay(settings, book, locator, now) -> dict:
    """The labelled messages the model did not learn from, as hotline tickets: how many go out
    automatically, and how many of those to an item of the right top-level class."""
    import tempfile

    from pipeline.classify import Classifier
    from pipeline.modelfiles import lexicon, read_labelled, training_file
    from pipeline.normalize import to_incident
    from pipeline.route import route
    from pipeline.textmodel import TopClassModel, held_out_split, train
    from schemas import HotlineTicket, ManualReview

    data = training_file(settings.messages_dir)
    if data is None:
        return {"skipped": f"no labelled messages under {settings.messages_dir}"}
    rows = read_labelled(data)
    learn, held_out = held_out_split(rows)
    typer.echo(f"training on {len(learn)} of {len(rows)} labelled messages, replaying the other {len(held_out)}…",
               err=True)
    model = train(learn, lexicon(settings.messages_dir / "taxonomy.csv", {r["label"] for r in rows},
                                 settings.dutylist_file, settings.units_file), trained_at=now.isoformat())
    with tempfile.TemporaryDirectory() as scratch:  # save and load: the model exactly as a worker runs it
        model = TopClassModel.load(model.save(Path(scratch)).parent)
    classifier = Classifier(book, model)
    tickets = [to_incident(HotlineTicket(ticket_no=f"labelled-{n}", received_at=now, title=r["title"][:500],
                                         text=r["text"] or r["title"]), salt="report", now=now, locator=locator,
                           dutylist_version=book.version) for n, r in enumerate(held_out)]
    auto = right = 0
    for row, incident, result in zip(held_out, tickets, classifier.classify_many(tickets), strict=True):
        decision = route(incident, result, book, now=now, threshold=settings.classify_threshold)
        if not isinstance(decision, ManualReview):
            auto += 1
            right += book.item(decision[0].item_no, incident.street).top_class == row["label"]
    return {"file": data.name, "held_out": len(held_out), "auto_share": round(auto / len(held_out), 4),
            "auto_class_accuracy": round(right / auto, 4) if auto else None}


model_cli = typer.Typer(help="The text model: train it offline, from the real labelled messages.", no_args_is_help=True)
cli.add_typer(model_cli, name="model")
eval_cli = typer.Typer(help="Measure the classifier on labelled data.", no_args_is_help=True)
cli.add_typer(eval_cli, name="eval")


@model_cli.command("train")
def model_train(
    data: Path = typer.Option(None, exists=True, dir_okay=False, help="labelled JSONL (title, text, label); "
                              "default: the shared labelled-large.jsonl (else labelled.jsonl)"),
    out: Path = typer.Option(None, help="model directory; default CITYOPS_MODEL_DIR"),
) -> None:
    """Train the top-level-class model and make it CURRENT in the model directory."""
    from infra.settings import Settings
    from pipeline.modelfiles import train_from_files, training_file

    settings = Settings()
    data = data or training_file(settings.messages_dir)
    if data is None:
        typer.echo(f"no labelled messages under {settings.messages_dir}: pass --data FILE", err=True)
        raise typer.Exit(2)
    typer.echo(f"training on {data}…", err=True)
    target = train_from_files(data, settings.messages_dir / "taxonomy.csv", out or settings.model_dir,
                              settings.dutylist_file, settings.units_file)
    typer.echo(f"trained {target.name} in {target.parent}")


@eval_cli.command("classify")
def eval_classify(
    data: Path = typer.Option(..., exists=True, dir_okay=False, help="JSONL rows with title, text, label"),
    cv: int = typer.Option(0, help="K > 1: cross-validate on DATA instead (the trained model is not used)"),
    model_dir: Path = typer.Option(None, help="default CITYOPS_MODEL_DIR"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Accuracy, macro-F1 and per-class figures of the top-level class on DATA."""
    import json

    from infra.settings import Settings
    from pipeline.modelfiles import ensure_trained, evaluate_file

    settings = Settings()
    model_dir = model_dir or settings.model_dir
    if cv <= 1:  # a fresh checkout has no model yet: train it as `cityops model train` would (to stderr)
        ensure_trained(model_dir, settings.messages_dir, settings.dutylist_file, settings.units_file,
                       lambda line: typer.echo(line, err=True))
    report = evaluate_file(data, model_dir, settings.messages_dir / "taxonomy.csv",
                           cv=cv, dutylist_file=settings.dutylist_file, units_file=settings.units_file)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    typer.echo(f"n={report['n']} accuracy={report['accuracy']:.3f} macro_f1={report['macro_f1']:.3f} ({report['method']})")
    for point in report["coverage_curve"]:
        if point["accuracy"] is not None:
            typer.echo(f"  confidence ≥ {point['threshold']:.2f}: coverage {point['coverage']:.1%}, "
                       f"accuracy {point['accuracy']:.1%}")
    for name, figures in report["per_class"].items():
        typer.echo(f"  {name:<10} P={figures['precision']:.3f} R={figures['recall']:.3f} F1={figures['f1']:.3f} n={figures['n']}")


@eval_cli.command("dispatch")
def eval_dispatch(
    data: Path = typer.Option(None, exists=True, dir_okay=False, help="JSONL like dispatch-silver.jsonl (id, title, "
                              "text, item_a, item_b, item); default: the shared dispatch-silver.jsonl"),
    replied: bool = typer.Option(True, "--replied/--no-replied", help="also the replied messages whose government "
                                 "reply names the unit that handled them"),
    folds: int = typer.Option(5, min=2, help="folds of the cross-validation when the data taught the unit head"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Dispatch measured by the unit a ticket reaches: the share sent automatically, the share of those to
    the right primary unit (主责) and item, by class and item, the coverage curve over the confidence,
    the worst confusions; by the unit gate and, beside it, the class gate (the decision before)."""
    import json

    from infra.settings import Settings

    settings = Settings()
    report = _dispatch_figures(settings, data, replied, folds)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    for name in report["sets"]:
        for gate in ("class_gate", "unit_gate"):
            if gate in report["sets"][name]:
                f = report["sets"][name][gate]
                best = f["sent_at_95_right_unit"]
                at_95 = "none" if best is None else f"{best['sent_share']:.1%} sent (confidence ≥ {best['threshold']})"
                typer.echo(f"{name:<8} {gate:<10} n={f['with_known_unit']} sent {f['sent_share']:.1%}, right unit "
                           f"{f['right_unit_of_sent'] or 0:.1%} of those, right item {f['right_item_of_sent'] or 0:.1%}; "
                           f"sent and right {f['sent_and_right_unit']:.1%}; at ≥95% right unit: {at_95}")


def _dispatch_figures(settings, data: Path | None, replied: bool, folds: int) -> dict:
    """`eval dispatch`'s figures (also `report routing --by-unit`): the model trained first if there is none."""
    from pipeline.dispatch_eval import Truth, silver_truths
    from pipeline.modelfiles import REPLIED_FILE, SILVER_FILE, ensure_trained, evaluate_dispatch, read_jsonl, unit_rows

    book, locator, _ = _offline_pipeline(settings)
    model = ensure_trained(settings.model_dir, settings.messages_dir, settings.dutylist_file, settings.units_file,
                           lambda line: typer.echo(line, err=True))
    if model is None:
        typer.echo(f"no text model and no labelled messages under {settings.messages_dir}", err=True)
        raise typer.Exit(2)
    silver_file = data or settings.messages_dir / SILVER_FILE
    if not silver_file.exists():
        typer.echo(f"no {silver_file}: pass --data FILE", err=True)
        raise typer.Exit(2)
    truths = {"silver": silver_truths(read_jsonl(silver_file), book)}
    training = unit_rows(settings.messages_dir, book)
    if replied and (settings.messages_dir / REPLIED_FILE).exists():
        truths["replied"] = [Truth(f"replied-{n}", t, x, u, None, None)
                             for n, (t, x, u) in enumerate(training["replied"])]
    taught = tuple(name for name in truths if data is None and model.meta.get("unit_rows_by_source", {}).get(name))
    sets = evaluate_dispatch(model, book, _dispatch_decider(book, locator, settings.classify_threshold), truths,
                             training, folds=folds, cross_validate_sets=taught)
    return {"model": model.version, "threshold": settings.classify_threshold, "sets": sets}


def _dispatch_decider(book, locator, threshold: float):
    """decide(model, truths) → a Decision per message: normalised as a hotline ticket, classified and routed
    as a worker would (the unit's confidence is the one the gate compares)."""
    import datetime as dt

    from pipeline.classify import Classifier
    from pipeline.dispatch_eval import Decision, unit_of
    from pipeline.normalize import to_incident
    from pipeline.route import route
    from schemas import HotlineTicket, ManualReview

    now = dt.datetime.now(dt.timezone.utc)

    def decide(model, truths) -> list:
        incidents = [to_incident(HotlineTicket(ticket_no=f"eval-{n}", received_at=now, title=t.title[:500],
                                               text=t.text or t.title or "（空）"), salt="eval", now=now,
                                 locator=locator, dutylist_version=book.version) for n, t in enumerate(truths)]
        decisions = []
        for incident, result in zip(incidents, Classifier(book, model).classify_many(incidents), strict=True):
            routed = route(incident, result, book, now=now, threshold=threshold)
            sent = not isinstance(routed, ManualReview)
            item = routed[0].item_no if sent else result.item_no
            decisions.append(Decision(item, unit_of(book, item), result.confidence, sent))
        return decisions

    return decide


@report_cli.command("cases")
def report_cases(
    data: Path = typer.Option(None, help="JSONL with user, time, title, text (default: the real unlabelled messages)"),
    hours: float = typer.Option(24, help="merge and hotspot window"),
    hotspot_threshold: int = typer.Option(3, help="reports of one item in one place that make a hotspot"),
    examples: int = typer.Option(5),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Replay real messages in time order: duplicate merges, near misses kept apart, hotspots."""
    import datetime as dt
    import json
    from collections import Counter

    from infra.settings import Settings
    from pipeline.dedupe import Deduper, MergePolicy, case_key, follow_repeat_calls
    from pipeline.dutylists import CITY_TZ
    from pipeline.hotspots import HotspotDetector
    from pipeline.pii import hash_contact
    from schemas import Incident

    settings = Settings()
    path = data or settings.messages_dir / "unlabelled.jsonl"
    book, locator, classifier = _offline_pipeline(settings)
    rows = sorted((json.loads(line) for line in path.open(encoding="utf-8")), key=lambda r: r["time"])
    incidents = []
    for row in rows:
        at = dt.datetime.fromisoformat(row["time"]).replace(tzinfo=CITY_TZ)
        where = locator.resolve(text=f"{row['title']} {row['text']}")
        incidents.append(Incident(
            incident_id=str(row["id"]), source="hotline", source_id=str(row["id"]), reported_at=at, normalized_at=at,
            title=row["title"], text=row["text"], reporter_hash=hash_contact(row["user"], "report"),
            district=where.district, street=where.street, community=where.community))
    deduper = Deduper(lambda item_no: MergePolicy(within_hours=hours))
    detector = HotspotDetector(hotspot_threshold, dt.timedelta(hours=hours))
    hotspots = []
    by_rule: Counter = Counter()
    shown: dict[str, list] = {}
    titles = {i.incident_id: i.title for i in incidents}
    # The stream's caller stage, replayed: where each report of a reporter goes at the operator threshold.
    recent_by_reporter: dict[str, list] = {}
    caller_stage: Counter = Counter()
    for incident, result in zip(incidents, classifier.classify_many(incidents), strict=True):
        routable = result.item_no is not None and result.confidence >= settings.classify_threshold
        own_key = case_key(incident, result.item_no) if routable else None
        if incident.reporter_hash:  # as in the stream: anonymous reports have no caller to remember
            verdict = follow_repeat_calls(recent_by_reporter.get(incident.reporter_hash, []), incident,
                                          result.item_no if routable else None, own_key,
                                          lambda item_no: MergePolicy(within_hours=hours))
            recent_by_reporter[incident.reporter_hash] = verdict.recent
            if verdict.repeat_of is None:
                pass
            elif verdict.case_key == own_key:
                caller_stage["same case key (the case stage merges it)" if own_key
                             else "to the operator, naming the report it repeats"] += 1
            else:
                caller_stage["to its case, from another item or street" if own_key
                             else "to its case, from the operator queue"] += 1
        merge = deduper.offer(incident, result.item_no or "unclassified")
        if result.item_no and (merge is None or merge.rule != "repeat call"):  # a caller repeating is one report
            hotspot = detector.offer(result.item_no, incident.community or incident.street, incident.reported_at)
            if hotspot:
                hotspots.append([hotspot.item_no, book.units[hotspot.place].name, hotspot.reports,
                                 hotspot.first_at.isoformat(), hotspot.last_at.isoformat()])
        if merge:
            by_rule[merge.rule] += 1
            if len(shown.setdefault(merge.rule, [])) < examples:
                shown[merge.rule].append([titles[merge.case_id][:40], incident.title[:40]])
    near = [[titles[m.case_id][:40], titles[m.incident_id][:40], m.why_apart] for m in deduper.near_misses[:examples]]
    report = {"messages": len(incidents), "merged": sum(by_rule.values()), "by_rule": dict(by_rule),
              "near_misses": len(deduper.near_misses), "hotspots": len(hotspots),
              "repeat_calls_in_the_stream": dict(caller_stage), "examples": shown,
              "near_miss_examples": near, "hotspot_examples": hotspots[:examples]}
    typer.echo(json.dumps(report, ensure_ascii=False, indent=None if as_json else 2))


bench_cli = typer.Typer(help="Benchmarks that print figures (record them in BENCHMARKS.md).", no_args_is_help=True)
cli.add_typer(bench_cli, name="bench")


@bench_cli.command("classify")
def bench_classify(
    messages: int = typer.Option(3000, help="real messages to classify (repeated if the file has fewer)"),
    batch: int = typer.Option(200, help="batch size, as the dispatcher uses"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Classification throughput on one core: messages per second, model and keywords, in batches."""
    import datetime as dt
    import json
    import time

    from devtools.shared_data import load_message_texts
    from infra.settings import Settings
    from pipeline.classify import Classifier
    from pipeline.dutylists import load_dutybook
    from pipeline.modelfiles import ensure_trained
    from pipeline.textmodel import TopClassModel, document
    from schemas import Incident

    settings = Settings()
    texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
    if not texts:
        typer.echo("needs the real messages in ../shared/data", err=True)
        raise typer.Exit(2)
    model = ensure_trained(settings.model_dir, settings.messages_dir, settings.dutylist_file, settings.units_file,
                           lambda line: typer.echo(line, err=True))
    book = load_dutybook(settings.dutylist_file, settings.units_file)
    now = dt.datetime.now(dt.timezone.utc)
    incidents = [Incident(incident_id=str(n), source="hotline", source_id=str(n), reported_at=now, normalized_at=now,
                          title=texts[n % len(texts)][0], text=texts[n % len(texts)][1]) for n in range(messages)]
    batches = [incidents[i:i + batch] for i in range(0, len(incidents), batch)]

    def rate(run) -> float:
        run(batches[0])  # warm-up: jieba's dictionary, vectorizer caches
        started = time.perf_counter()
        for chunk in batches:
            run(chunk)
        return round(messages / (time.perf_counter() - started), 1)

    full, keywords = Classifier(book, model), Classifier(book)
    class_gate = Classifier(book, TopClassModel(model.pipeline, model.version, model.meta, None))
    singles = []
    for incident in incidents[:1000]:  # one report at a time: what a quiet hour's dispatcher does
        started = time.perf_counter()
        full.classify_many([incident])
        singles.append(1000 * (time.perf_counter() - started))
    singles.sort()
    figures = {
        "messages": messages, "batch": batch, "mean_chars": round(sum(len(i.text) for i in incidents) / messages),
        "unit_head": model.units is not None,
        "model_only_per_s": rate(lambda chunk: model.predict_with_units([document(i.title, i.text) for i in chunk])),
        "keywords_only_per_s": rate(keywords.classify_many),
        "class_gate_per_s": rate(class_gate.classify_many),
        "classify_per_s": rate(full.classify_many),
        "batch_of_one_ms": {"p50": round(singles[len(singles) // 2], 2),
                            "p99": round(singles[int(len(singles) * 0.99)], 2)},
    }
    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 2))


@bench_cli.command("replay")
def bench_replay_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="historical work orders: CSV or JSON lines"),
    mapping: str = typer.Option("us311", help="a mapping file or the name of a shipped one"),
    limit: int = typer.Option(None, min=1, help="the first N records only"),
    as_json: bool = typer.Option(False, "--json", help="one line of JSON"),
) -> None:
    """History replay at full speed on a fresh deployment (embedded broker unless KAFKA_BOOTSTRAP_SERVERS):
    orders sent per second, and per second until all are stored with their whole history."""
    import json
    import tempfile

    from devtools.bench.pipeline import run_replay_bench
    from infra.settings import Settings
    from pipeline.modelfiles import ensure_trained

    settings = Settings()
    say = lambda line: typer.echo(line, err=True)  # noqa: E731
    ensure_trained(settings.model_dir, settings.messages_dir, settings.dutylist_file, settings.units_file, say)
    with tempfile.TemporaryDirectory(prefix="cityops-bench-replay-") as work:
        figures = run_replay_bench(file, mapping, Path(work), settings.model_dir, limit=limit, log=say)
    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 2))


@bench_cli.command("store")
def bench_store_command(
    events: int = typer.Option(10_000_000, min=1000, help="task events to generate (about five per task)"),
    repeats: int = typer.Option(40, min=5, help="runs per query"),
    as_json: bool = typer.Option(False, "--json", help="one line of JSON"),
) -> None:
    """The screen's queries (SLA board, overdue list, trends, a grid's tasks, a timeline, /stats/) over
    a synthetic history in a fresh chDB store: p50/p95 per query."""
    import json
    import tempfile

    from devtools.bench.store import run_store_bench
    from infra.settings import Settings
    from pipeline.dutylists import load_dutybook

    settings = Settings()
    book = load_dutybook(settings.dutylist_file, settings.units_file)
    say = lambda line: typer.echo(line, err=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="cityops-bench-store-") as work:
        figures = run_store_bench(events, repeats, Path(work), book, log=say)
    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 2))


@bench_cli.command("pipeline")
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
    import json
    import tempfile

    from devtools.shared_data import load_message_texts
    from infra.settings import Settings
    from pipeline.modelfiles import ensure_trained

    try:
        offered = [float(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        typer.echo("--rates: comma-separated numbers, e.g. 200,1000", err=True)
        raise typer.Exit(2) from None
    if events < 1 or workers < 1 or any(r <= 0 for r in offered):
        typer.echo("--events, --workers and every rate must be positive", err=True)
        raise typer.Exit(2)
    settings = Settings()
    say = lambda line: typer.echo(line, err=True)  # noqa: E731 - progress to stderr, figures to stdout
    model = ensure_trained(settings.model_dir, settings.messages_dir, settings.dutylist_file, settings.units_file, say)
    texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
    from devtools.bench.pipeline import run_pipeline_bench

    with tempfile.TemporaryDirectory(prefix="cityops-bench-") as work:
        figures = run_pipeline_bench(events, offered, rate_seconds, seed, Path(work),
                                     settings.model_dir.resolve() if model is not None else None, texts,
                                     profile=_data_path(settings.data_dir / "bench", "worker-profile.txt")
                                     if profile else None, workers=workers, log=say)
    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 2))


@bench_cli.command("soak")
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
    import json
    import tempfile

    from devtools.bench.soak import run_soak_bench
    from devtools.shared_data import load_message_texts, load_reply_days
    from infra.settings import Settings
    from pipeline.modelfiles import ensure_trained

    if min(minutes, rate, clock_scale, sample_seconds) <= 0 or warmup_minutes < 0:
        typer.echo("--minutes, --rate, --clock-scale and --sample-seconds must be positive", err=True)
        raise typer.Exit(2)
    if retention_hours < 24:
        typer.echo("--retention-hours: at least 24 (the merge and hotspot windows)", err=True)
        raise typer.Exit(2)
    settings = Settings()
    say = lambda line: typer.echo(line, err=True)  # noqa: E731 - progress to stderr, figures to stdout
    model = ensure_trained(settings.model_dir, settings.messages_dir, settings.dutylist_file, settings.units_file, say)
    texts = load_message_texts(settings.messages_dir / "unlabelled.jsonl")
    reply_days = load_reply_days(settings.messages_dir / "replied.jsonl")
    with tempfile.TemporaryDirectory(prefix="cityops-bench-soak-") as work:
        figures = run_soak_bench(minutes, rate, clock_scale, retention_hours, warmup_minutes, Path(work),
                                 settings.model_dir.resolve() if model is not None else None, texts, reply_days,
                                 sample_seconds=sample_seconds, log=say)
    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 2))


@bench_cli.command("api")
def bench_api_command(
    requests: int = typer.Option(2000, help="intake POSTs in each run"),
    concurrency: int = typer.Option(20, help="requests in flight in the concurrent run"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Latency of an intake POST answered after the broker's acknowledgement (p50/p90/p99), one at a
    time and CONCURRENCY at once, on a live api and broker (the embedded one, or KAFKA_BOOTSTRAP_SERVERS)."""
    import json
    import tempfile

    from devtools.bench.api import run_api_bench

    if requests < 1 or concurrency < 1:
        typer.echo("--requests and --concurrency must be positive", err=True)
        raise typer.Exit(2)
    say = lambda line: typer.echo(line, err=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="cityops-bench-api-") as work:
        figures = run_api_bench(requests, concurrency, Path(work), "主干道路灯坏了一个星期，晚上很黑，希望尽快修理", log=say)
    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 2))


def _data_path(data_dir: Path, name: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir / name


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every connection at INFO; keep its warnings only.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    # kafka-python 3 warns whenever one poll of its selector takes over 100 ms: on a busy 2-core
    # machine that is every few seconds, and it says nothing an operator can act on.
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    cli()


if __name__ == "__main__":
    main()
