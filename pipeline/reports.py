"""The offline reports' logic (`cityops report routing|cases|locations`): real or generated messages
run through the worker's own normalise → classify → route, dedupe and hotspot code, counted."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.classify import Classifier
from pipeline.dedupe import Deduper, MergePolicy, case_key, follow_repeat_calls
from pipeline.dutylists import CITY_TZ, DutyBook
from pipeline.hotspots import HotspotDetector
from pipeline.loadgen import generate
from pipeline.locate import Locator
from pipeline.modelfiles import lexicon, read_labelled
from pipeline.normalize import IntakeError, parse_intake, to_incident
from pipeline.pii import hash_contact
from pipeline.route import route
from pipeline.textmodel import TopClassModel, held_out_split, train
from schemas import HotlineTicket, Incident, ManualReview


def routing_report(book: DutyBook, locator: Locator, classifier: Classifier, *, events: int, seed: int,
                   texts: list[tuple[str, str]], threshold: float, now: dt.datetime) -> dict:
    """A generated feed (hotline texts real when given) through normalise → classify → route: the outcomes."""
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
        decision = route(incident, classifier.classify(incident), book, now=now, threshold=threshold)
        if isinstance(decision, ManualReview):
            outcome["manual"] += 1
            reasons["摊派 refused" if decision.tanpai_refused else _reason_kind(decision.reason)] += 1
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
    return {"events": events, "outcome": dict(outcome), "primary_unit_kind": dict(primary_kind),
            "hotline_auto_share": round(by_source[("hotline", "dispatched")] / hotline, 4) if hotline else None,
            "manual_reasons": dict(reasons.most_common(8)),
            "territorial_without_street": dict(no_street.most_common()),
            "by_source": {f"{s}/{o}": n for (s, o), n in sorted(by_source.items())}}


def _reason_kind(reason: str) -> str:
    """The kind of an operator-queue reason, without the item numbers and figures that make each one unique."""
    kind = re.sub(r"\d+(\.\d+)?", "N", re.sub(r"[A-Z]{2}-\d{3}", "<item>", reason.split(" (")[0]))
    return kind.split(":")[0][:60]


def labelled_replay(data: Path, taxonomy: Path, dutylist_file: Path | None, units_file: Path | None, book: DutyBook,
                    locator: Locator, *, threshold: float, now: dt.datetime, say: Callable[[str], None]) -> dict:
    """The labelled messages a model trained on the other four fifths did not learn from, as hotline
    tickets: how many go out automatically, and how many of those to an item of the right top-level class."""
    rows = read_labelled(data)
    learn, held_out = held_out_split(rows)
    say(f"training on {len(learn)} of {len(rows)} labelled messages, replaying the other {len(held_out)}…")
    model = train(learn, lexicon(taxonomy, {r["label"] for r in rows}, dutylist_file, units_file),
                  trained_at=now.isoformat())
    with tempfile.TemporaryDirectory() as scratch:  # save and load: the model exactly as a worker runs it
        model = TopClassModel.load(model.save(Path(scratch)).parent)
    classifier = Classifier(book, model)
    tickets = [to_incident(HotlineTicket(ticket_no=f"labelled-{n}", received_at=now, title=r["title"][:500],
                                         text=r["text"] or r["title"]), salt="report", now=now, locator=locator,
                           dutylist_version=book.version) for n, r in enumerate(held_out)]
    auto = right = 0
    for row, incident, result in zip(held_out, tickets, classifier.classify_many(tickets), strict=True):
        decision = route(incident, result, book, now=now, threshold=threshold)
        if not isinstance(decision, ManualReview):
            auto += 1
            right += book.item(decision[0].item_no, incident.street).top_class == row["label"]
    return {"file": data.name, "held_out": len(held_out), "auto_share": round(auto / len(held_out), 4),
            "auto_class_accuracy": round(right / auto, 4) if auto else None}


def locations_report(rows: list[dict], locator: Locator, examples: int) -> dict:
    """How much of real message text resolves to a community, street, district, or nothing."""
    counts: Counter = Counter()
    shown: dict[str, list] = {}
    for row in rows:
        where = locator.resolve(text=f"{row.get('title', '')} {row.get('text', '')}")
        level = where.level if not (where.level == "district" and where.problem) else "district (streets ambiguous)"
        counts[level] += 1
        if len(shown.setdefault(level, [])) < examples:
            shown[level].append({"title": row.get("title", "")[:40], "street": where.street, "district": where.district,
                                 "problem": where.problem})
    return {"n": len(rows), "share": {k: round(v / len(rows), 4) for k, v in sorted(counts.items())},
            "counts": dict(counts), "examples": shown}


def cases_report(rows: Iterable[dict], book: DutyBook, locator: Locator, classifier: Classifier, *, hours: float,
                 hotspot_threshold: int, threshold: float, examples: int) -> dict:
    """Real messages (user, time, title, text) replayed in time order: duplicate merges, near misses kept
    apart, hotspots, and where the stream's caller stage sends a reporter's repeated reports."""
    incidents = _as_incidents(sorted(rows, key=lambda r: r["time"]), locator)
    policy = lambda item_no: MergePolicy(within_hours=hours)  # noqa: E731 - one window for every item
    deduper = Deduper(policy)
    detector = HotspotDetector(hotspot_threshold, dt.timedelta(hours=hours))
    hotspots = []
    by_rule: Counter = Counter()
    shown: dict[str, list] = {}
    titles = {i.incident_id: i.title for i in incidents}
    recent_by_reporter: dict[str, list] = {}
    caller_stage: Counter = Counter()
    for incident, result in zip(incidents, classifier.classify_many(incidents), strict=True):
        routable = result.item_no is not None and result.confidence >= threshold
        own_key = case_key(incident, result.item_no) if routable else None
        if incident.reporter_hash:  # as in the stream: anonymous reports have no caller to remember
            verdict = follow_repeat_calls(recent_by_reporter.get(incident.reporter_hash, []), incident,
                                          result.item_no if routable else None, own_key, policy)
            recent_by_reporter[incident.reporter_hash] = verdict.recent
            if verdict.repeat_of is not None:
                caller_stage[_caller_outcome(verdict.case_key == own_key, own_key is not None)] += 1
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
    return {"messages": len(incidents), "merged": sum(by_rule.values()), "by_rule": dict(by_rule),
            "near_misses": len(deduper.near_misses), "hotspots": len(hotspots),
            "repeat_calls_in_the_stream": dict(caller_stage), "examples": shown,
            "near_miss_examples": near, "hotspot_examples": hotspots[:examples]}


def _as_incidents(rows: Iterable[dict], locator: Locator) -> list[Incident]:
    incidents = []
    for row in rows:
        at = dt.datetime.fromisoformat(row["time"]).replace(tzinfo=CITY_TZ)
        where = locator.resolve(text=f"{row['title']} {row['text']}")
        incidents.append(Incident(
            incident_id=str(row["id"]), source="hotline", source_id=str(row["id"]), reported_at=at, normalized_at=at,
            title=row["title"], text=row["text"], reporter_hash=hash_contact(row["user"], "report"),
            district=where.district, street=where.street, community=where.community))
    return incidents


def _caller_outcome(same_case_key: bool, routable: bool) -> str:
    if same_case_key:
        return "same case key (the case stage merges it)" if routable else "to the operator, naming the report it repeats"
    return "to its case, from another item or street" if routable else "to its case, from the operator queue"
