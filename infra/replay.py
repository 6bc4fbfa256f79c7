"""History replay, the outside part: read a file of historical work orders (CSV or JSON lines) with
a mapping, and put each order on the hotline intake topic as the ticket `pipeline.replay` makes of
it — at full speed, keyed by its ticket number, so a second replay of the file changes nothing.
A record that cannot be replayed goes to the dead-letter topic with the reason (the column, never
its value) and its row number; nothing is skipped silently.

The bulk path (`bulk_replay`) stores the orders whose record is finished straight into the store, as
the stages would have (the same pure functions: normalise, classify, route, the task state machine),
in batches of thousands; what the stages must still hold — an order still open (its SLA clock runs
in the task stage), one the duty list sends to the operator, one the intake refuses — goes through
the topics as above. Checked equal to the stage path on the same file (tests/integration/test_replay.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from infra.kafka.intake_client import IntakeClient
from infra.store import Store
from pipeline import ids
from pipeline.classify import Classifier
from pipeline.dutylists import DutyBook
from pipeline.locate import Locator
from pipeline.normalize import IntakeError, to_incident
from pipeline.replay import ReplayRowError, replayed_updates, to_ticket
from pipeline.route import route_history
from pipeline.sla import SlaClock
from schemas import DeadLetter, HotlineTicket, Incident, ManualReview, describe_validation_error
from schemas.replay import ReplayMapping

STAGE = "replay"
CONFIRM_EVERY = 10_000  # records between waits for the broker's acknowledgements (bounded memory)


class MappingError(ValueError):
    """The mapping file cannot be used; the text says where and why."""


def shipped_mappings() -> dict[str, Path]:
    """The mappings that come with cityops (pipeline/data/replay), by name."""
    folder = resources.files("pipeline").joinpath("data/replay")
    return {p.name.removesuffix(".yaml"): Path(str(p)) for p in folder.iterdir() if p.name.endswith(".yaml")}


def load_mapping(name_or_path: str) -> ReplayMapping:
    """A mapping by the name of one that ships (`us311`) or by its file's path."""
    path = shipped_mappings().get(name_or_path) or Path(name_or_path)
    if not path.is_file():
        raise MappingError(f"{name_or_path}: no such file, and not a shipped mapping "
                           f"({', '.join(sorted(shipped_mappings()))})")
    try:
        return ReplayMapping.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not YAML: {exc}") from None
    except ValidationError as exc:
        raise MappingError(f"{path}: {describe_validation_error(exc, name_unknown_fields=True)}") from None


def read_records(path: Path, mapping: ReplayMapping) -> Iterator[tuple[int, dict | None, str]]:
    """(row number from 1, the record or None when it cannot be read, the raw text) for each record;
    MappingError before the first when the file does not fit the mapping (a CSV file without its
    columns, a JSON-lines file whose first record lacks the order's number or creation time)."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        if mapping.format == "csv":
            reader = csv.DictReader(f)
            missing = sorted(set(mapping.columns()) - set(reader.fieldnames or []))
            if missing:
                raise MappingError(f"{path.name}: no column {', '.join(missing)} (mapping {mapping.name})")
            for n, row in enumerate(reader, 1):
                yield n, row, json.dumps(row, ensure_ascii=False)
            return
        first = True
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            record = record if isinstance(record, dict) else None
            if first and (missing := [c for c in (mapping.id, mapping.created) if record is None or c not in record]):
                raise MappingError(f"{path.name}: its first record is not a JSON object with {', '.join(missing)} "
                                   f"(mapping {mapping.name} reads JSON lines)")
            first = False
            yield n, record, line


def count_records(path: Path, mapping: ReplayMapping) -> int:
    """How many records `path` holds (lines, not parsed), once it is clear the mapping fits it."""
    next(read_records(path, mapping), None)  # MappingError if it does not
    with path.open(encoding="utf-8-sig", newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1 if mapping.format == "csv" else sum(1 for line in f if line.strip())


@dataclass
class ReplayResult:
    sent: int = 0  # to the hotline intake (the stages)
    refused: dict[str, int] = field(default_factory=dict)  # reason → rows (dead-lettered)
    seconds: float = 0.0
    stored: int = 0  # straight into the store (bulk)

    @property
    def rows(self) -> int:
        return self.sent + self.stored + self.refused_rows

    @property
    def refused_rows(self) -> int:
        return sum(self.refused.values())


def replay_file(client: IntakeClient, path: Path, mapping: ReplayMapping, *,
                progress: Callable[[ReplayResult], None] = lambda r: None, limit: int | None = None) -> ReplayResult:
    """Send every record of `path` (the first `limit`); `progress(result so far)` after each."""
    started = time.monotonic()
    result, futures = ReplayResult(), []
    for n, record, raw in read_records(path, mapping):
        if limit is not None and result.rows >= limit:
            break
        try:
            futures.append(client.send(ticket_of(mapping, record)))
            result.sent += 1
        except (ReplayRowError, ValueError, TypeError) as exc:  # never a traceback for one record
            futures.append(refuse(client, path, n, raw, exc, result))
        progress(result)
        if len(futures) >= CONFIRM_EVERY:
            _confirm(client, futures)
    _confirm(client, futures)
    result.seconds = time.monotonic() - started
    return result


def ticket_of(mapping: ReplayMapping, record: dict | None) -> HotlineTicket:
    if record is None:
        raise ReplayRowError("(line): not a JSON object")
    return to_ticket(mapping, record)


def refuse(client: IntakeClient, path: Path, n: int, raw: str, exc: Exception, result: ReplayResult):
    """Row `n` cannot be replayed: counted by reason and sent as a dead letter (its future)."""
    reason = str(exc) if isinstance(exc, ReplayRowError) else f"(record): cannot be read ({type(exc).__name__})"
    result.refused[reason] = result.refused.get(reason, 0) + 1
    topic = f"file:{path.name}"
    letter = DeadLetter.of(raw.encode(), dead_letter_id=ids.dead_letter_id(topic, 0, n, STAGE), topic=topic,
                           partition=0, offset=n, stage=STAGE, reason=f"row {n}: {reason}",
                           failed_at=dt.datetime.now(dt.timezone.utc))
    return client.send_message(client.names.dead_letters, letter.dead_letter_id, letter)


@dataclass(frozen=True)
class OfflineStages:
    """What the stages would decide a replayed order with: the duty book in force, the locator, the
    classifier, the SLA clock, the PII salt and the operator threshold (infra.settings)."""

    book: DutyBook
    locator: Locator
    classifier: Classifier
    sla: SlaClock
    salt: str
    threshold: float


def bulk_replay(client: IntakeClient, store: Store, path: Path, mapping: ReplayMapping, stages: OfflineStages, *,
                progress: Callable[[ReplayResult], None] = lambda r: None, limit: int | None = None,
                chunk: int = 5_000) -> ReplayResult:
    """Every finished order of `path` stored straight into `store`, `chunk` orders an insert; the rest
    sent to the stages (see the module's doc). Safe to run again: every row has its deterministic id."""
    started = time.monotonic()
    result, futures, pending = ReplayResult(), [], []

    def store_pending() -> None:
        incidents, updates = [], []
        results = stages.classifier.classify_many([incident for _, incident in pending])
        for (ticket, incident), classification in zip(pending, results, strict=True):
            decision = route_history(incident, classification, stages.book, threshold=stages.threshold)
            if isinstance(decision, ManualReview) or incident.history.closed_at is None:
                futures.append(client.send(ticket))  # the stages hold it: the operator's queue, a running clock
                result.sent += 1
                continue
            incidents.append(incident)
            updates += replayed_updates(incident, decision, stages.sla)
        store.insert(incidents, updates)
        result.stored += len(incidents)
        pending.clear()

    for n, record, raw in read_records(path, mapping):
        if limit is not None and result.rows + len(pending) >= limit:
            break
        try:
            ticket = ticket_of(mapping, record)
        except (ReplayRowError, ValueError, TypeError) as exc:
            futures.append(refuse(client, path, n, raw, exc, result))
            continue
        incident = finished_order(ticket, stages)
        if incident is None:
            futures.append(client.send(ticket))  # the intake stage says why, as for any ticket
            result.sent += 1
        else:
            pending.append((ticket, incident))
        if len(pending) >= chunk:
            store_pending()
            progress(result)
        if len(futures) >= CONFIRM_EVERY:
            _confirm(client, futures)
    if pending:
        store_pending()
    progress(result)
    _confirm(client, futures)
    result.seconds = time.monotonic() - started
    return result


def finished_order(ticket: HotlineTicket, stages: OfflineStages) -> Incident | None:
    """The incident the intake stage would make of a replayed ticket, or None when it would refuse it."""
    try:
        return to_incident(ticket, salt=stages.salt, now=dt.datetime.now(dt.timezone.utc), locator=stages.locator,
                           dutylist_version=stages.book.version)
    except IntakeError:
        return None


def _confirm(client: IntakeClient, futures: list) -> None:
    """Wait for the broker to have everything sent so far; raises if it refused one (then the replay
    is not complete: run it again, what arrived is not taken twice)."""
    client.producer.flush()
    for future in futures:
        future.result()
    futures.clear()
