"""What the command groups share: the settings of this run, the api client, the trained model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from infra.settings import Settings

API_URL = typer.Option("http://127.0.0.1:8080", envvar="CITYOPS_API_URL", help="the api's address (`cityops demo` prints it)")
SINCE = typer.Option(None, help="only tasks dispatched at or after this ISO time")
UNTIL = typer.Option(None, help="only tasks dispatched before this ISO time")
AS_OF = typer.Option(None, "--as-of", help="the figures as of this ISO time (what was overdue then)")


_settings: Settings | None = None


def begin_run() -> None:
    """Called by the root command before each run: the settings are read afresh, once, when first needed."""
    global _settings
    _settings = None


def current_settings() -> Settings:
    """The settings of this run, read from the environment once and passed down from here."""
    global _settings
    if _settings is None:
        from infra.settings import Settings

        _settings = Settings()
    return _settings


def say(line: str) -> None:
    """Progress and warnings to stderr; figures go to stdout."""
    typer.echo(line, err=True)


def trained_model(current: Settings):
    """The text model in force, trained first as `cityops model train` would when a fresh checkout has none."""
    from pipeline.modelfiles import ensure_trained

    return ensure_trained(current.model_dir, current.messages_dir, current.dutylist_file, current.units_file, say)


def offline_pipeline(current: Settings):
    """The duty book, locator and classifier a worker would use, for offline reports."""
    from pipeline.classify import Classifier
    from pipeline.dutylists import load_dutybook
    from pipeline.locate import Locator
    from pipeline.textmodel import TopClassModel

    book = load_dutybook(current.dutylist_file, current.units_file)
    return book, Locator(book.registry), Classifier(book, TopClassModel.load(current.model_dir))


def offline_stages(current: Settings):
    """What the stages decide a replayed order with, for `replay --bulk` (infra.replay.OfflineStages)."""
    from infra.replay import OfflineStages

    trained_model(current)  # the model the workers run, trained first on a fresh checkout
    book, locator, classifier = offline_pipeline(current)
    return OfflineStages(book, locator, classifier, current.sla_clock(), current.pii_salt.get_secret_value(),
                         current.classify_threshold)


def require_kafka(current: Settings) -> str:
    if not current.kafka_bootstrap_servers:
        say("set KAFKA_BOOTSTRAP_SERVERS to the broker the workers use (`cityops demo` prints it)")
        raise typer.Exit(2)
    return current.kafka_bootstrap_servers


def call_api(base: str, path: str, body: dict | None = None, scope: str = "read", *, raw: bool = False,
             timeout: float = 30):
    """GET (POST with `body`) from `cityops api` with the key in CITYOPS_API_KEY: its JSON (`raw`: its
    bytes); a clear message (exit 2) instead of a traceback."""
    import json
    import os
    import urllib.error
    import urllib.request

    key = os.environ.get("CITYOPS_API_KEY", "")
    request = urllib.request.Request(
        f"{base.rstrip('/')}{path}", data=None if body is None else json.dumps(body, ensure_ascii=False).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.read() if raw else json.load(resp)
    except urllib.error.HTTPError as exc:
        hint = (f" (set CITYOPS_API_KEY to a key with the {scope} scope: `cityops keys issue`)"
                if exc.code in (401, 403) else "")
        try:
            problem = json.load(exc)
        except ValueError:  # not a problem document (a proxy's page, a crash): its status says enough
            problem = {}
        fields = "".join(f"\n  {e['field']}: {e['message']}" for e in problem.get("errors", []))
        say(f"{base}{path}: {exc.code} {problem.get('detail', exc.reason)}{hint}{fields}")
    except OSError as exc:
        say(f"cannot reach the api at {base} ({exc}); is `cityops api` (or `cityops demo`) running?")
    raise typer.Exit(2)


def window(since: str | None, until: str | None, as_of: str | None) -> dict[str, str]:
    return {k: v for k, v in (("since", since), ("until", until), ("as_of", as_of)) if v}


def unit_name(book, code: str) -> str:
    unit = book.units.get(code)
    return f"{unit.name}({code})" if unit else code


def data_path(data_dir: Path, name: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir / name


def print_json(figures, as_json: bool) -> None:
    """One line of JSON for a program, indented for a reader."""
    import json

    typer.echo(json.dumps(figures, ensure_ascii=False, indent=None if as_json else 2))
