"""每月一题: the month's recurring problems, for the monthly bulletin (月度通报).

Beijing's 每月一题 takes the most frequent and hardest problem types of a month for a city-wide fix.
Here a problem is a group of the month's reports that are about one thing, found two ways:
- **one item in one place**: the same duty item in the same street, or district when the street is
  unknown (at least `least` reports);
- **similar text**: reports whose wording is alike (TF-IDF over character 2–3-grams, cosine
  distance at most `TEXT_DISTANCE`, DBSCAN with `least` reports a core), whatever item or place
  the dispatcher gave them — the same problem filed under different items, or across streets (the
  reports people worded: hotline and grid workers, not sensors' readings or whistles' summons).
A group most of whose reports are already in a hotter one is not listed again.

Each is ranked by its heat, a sum of four counts, stated in the bulletin (HEAT):
reports + places (streets, or districts) + still open + growth (reports beyond the month before's, never below 0).
The month before is counted the same way: its reports under the same item in the same street, or
whose text is as close to one of the group's reports.

Pure: the reports come in (text already masked at intake), the problems go out.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

HEAT = "热度 = 诉求件数 + 涉及地点数（街道，不明时为区县） + 未办结件数 + 环比增量（本月件数减上月件数，不低于 0）"
HEAT_EN = "heat = reports + places (streets, else districts) + still open + growth (reports beyond the month before's, never below 0)"
# Cosine distance between the TF-IDF vectors of two reports about one thing: at 0.55, July 2019 of the
# real unlabelled messages (490) gives five groups, each one problem (a road 3 m from homes, 两证合一 in
# one estate, a hospital at an estate's gate, investment promotion, a park's start); at 0.6 a sixth
# mixes unrelated complaints, at 0.45 two real ones are lost.
TEXT_DISTANCE = 0.55
EXAMPLES = 3


# The sources whose words are a person's: a sensor's reading or a whistle's summons has a set title, so
# its "similar text" says nothing; they still recur as one item in one place.
WORDED_SOURCES = frozenset({"hotline", "grid"})


@dataclass(frozen=True)
class MonthReport:
    incident_id: str
    reported_at: dt.datetime
    source: str
    title: str
    text: str  # masked at intake
    place: str | None  # the street, else the district
    item_no: str | None  # the item its task runs under (or the case's it joined); None: not dispatched
    unit: str | None
    open: bool  # its task not yet completed


@dataclass(frozen=True)
class RecurringProblem:
    found_by: str  # "item_place" or "similar_text"
    items: list[tuple[str, int]]  # (item number, reports), most first
    places: list[tuple[str, int]]
    units: list[tuple[str, int]]
    reports: int
    place_count: int
    open: int
    month_before: int
    growth: int
    heat: int
    examples: list[dict]  # title and the text's opening, of the reports nearest the group's middle
    incident_ids: list[str]


def recurring_problems(month: Sequence[MonthReport], before: Sequence[MonthReport], *, least: int = 3,
                       top: int = 10) -> list[RecurringProblem]:
    """The month's problems, hottest first (at most `top`)."""
    if not month:
        return []
    groups: list[tuple[str, list[int], int]] = []  # (found by, members, reports of the month before)
    before_by_key = Counter((r.item_no, r.place) for r in before if r.item_no and r.place)
    by_key: dict[tuple[str, str], list[int]] = {}
    for n, r in enumerate(month):
        if r.item_no and r.place:
            by_key.setdefault((r.item_no, r.place), []).append(n)
    groups += [("item_place", members, before_by_key[key]) for key, members in by_key.items() if len(members) >= least]
    worded = [n for n, r in enumerate(month) if r.source in WORDED_SOURCES]
    vectors, before_vectors = _vectors(month, [r for r in before if r.source in WORDED_SOURCES])
    labels = _text_clusters(vectors[worded], least)
    nearest_before = [(worded[n], sim) for n, sim in _nearest(before_vectors, vectors[worded])]
    for label in sorted(set(labels) - {-1}):
        members = [worded[k] for k, lab in enumerate(labels) if lab == label]
        in_cluster = set(members)
        earlier = sum(1 for n, sim in nearest_before if n in in_cluster and sim >= 1 - TEXT_DISTANCE)
        groups.append(("similar_text", members, earlier))
    problems = sorted((_problem(found_by, members, earlier, month, vectors) for found_by, members, earlier in groups),
                      key=lambda p: (-p.heat, -p.reports, p.found_by, p.incident_ids[0]))
    listed: list[RecurringProblem] = []
    for problem in problems:
        ids = set(problem.incident_ids)
        if any(len(ids & set(hotter.incident_ids)) * 2 > len(ids) for hotter in listed):
            continue
        listed.append(problem)
        if len(listed) == top:
            break
    return listed


def _vectors(month: Sequence[MonthReport], before: Sequence[MonthReport]):
    from sklearn.feature_extraction.text import TfidfVectorizer

    def doc(r: MonthReport) -> str:
        return f"{r.title} {r.text[:300]}"

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), min_df=2 if len(month) > 20 else 1,
                                 sublinear_tf=True)
    vectors = vectorizer.fit_transform([doc(r) for r in month])
    return vectors, vectorizer.transform([doc(r) for r in before]) if before else None


def _text_clusters(vectors, least: int) -> list[int]:
    from sklearn.cluster import DBSCAN

    if vectors.shape[0] < least:
        return [-1] * vectors.shape[0]
    return DBSCAN(eps=TEXT_DISTANCE, min_samples=least, metric="cosine").fit(vectors).labels_.tolist()


def _nearest(before_vectors, vectors, chunk: int = 1000) -> list[tuple[int, float]]:
    """For each report of the month before: the month's report its text is nearest to, and how near
    (cosine similarity; the vectors are L2-normalised)."""
    if before_vectors is None or before_vectors.shape[0] == 0 or vectors.shape[0] == 0:
        return []
    found = []
    for start in range(0, before_vectors.shape[0], chunk):
        sims = (before_vectors[start:start + chunk] @ vectors.T).toarray()
        best = sims.argmax(axis=1)
        found += [(int(n), float(sims[row, n])) for row, n in enumerate(best)]
    return found


def _problem(found_by: str, members: list[int], earlier: int, month: Sequence[MonthReport], vectors) -> RecurringProblem:
    reports = [month[n] for n in members]
    places = Counter(r.place for r in reports if r.place)
    still_open = sum(r.open for r in reports)
    growth = max(0, len(reports) - earlier)
    centre = np.asarray(vectors[members].mean(axis=0)).ravel()
    closeness = vectors[members] @ centre
    nearest = sorted(range(len(members)), key=lambda k: (-closeness[k], k))[:EXAMPLES]
    return RecurringProblem(
        found_by=found_by, items=Counter(r.item_no for r in reports if r.item_no).most_common(),
        places=places.most_common(), units=Counter(r.unit for r in reports if r.unit).most_common(),
        reports=len(reports), place_count=len(places), open=still_open, month_before=earlier, growth=growth,
        heat=len(reports) + len(places) + still_open + growth,
        examples=[{"title": reports[k].title or reports[k].text[:30], "text": reports[k].text[:80]} for k in nearest],
        incident_ids=sorted(r.incident_id for r in reports))


# The months a bulletin may cover: what the store keeps (DateTime64 from 1900), with room either side.
MONTH_PATTERN = r"^(19[7-9]\d|2[01]\d\d)-(0[1-9]|1[0-2])$"


def month_window(month: str) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    """(the month's first instant, the next month's, the month before's), city time, for "YYYY-MM"."""
    from pipeline.dutylists import CITY_TZ

    year, number = (int(part) for part in month.split("-"))
    since = dt.datetime(year, number, 1, tzinfo=CITY_TZ)
    until = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=CITY_TZ)
    before = dt.datetime(year - (number == 1), (number - 2) % 12 + 1, 1, tzinfo=CITY_TZ)
    return since, until, before
