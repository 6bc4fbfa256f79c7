"""Department and street scores (考核) from the SLA board's rates, by a city's score scheme.

Pure: the rates come in as the board's rows (infra.store.sla), one board per intake source a scheme
names. A term without data for a unit (no whistles answered, nothing evaluated) is left out and
the other weights rescale; `coverage` says how much of the scheme's weight the score rests on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from pipeline.dutylists import sample_path
from schemas.scores import LOWER_IS_BETTER, ScoreScheme, ScoreSchemes


def load_schemes(path: Path | None = None) -> ScoreSchemes:
    """The score schemes in `path` (the sample city's by default), validated."""
    text = (path or sample_path("scores.yaml")).read_text(encoding="utf-8")
    return ScoreSchemes.model_validate(yaml.safe_load(text))


def sources_needed(scheme: ScoreScheme) -> list[str | None]:
    """The boards a scheme reads: None for all tasks, else an intake source."""
    return sorted({t.source for t in scheme.terms}, key=lambda s: s or "")


def score(scheme: ScoreScheme, boards: Mapping[str | None, Mapping[str, dict]]) -> list[dict]:
    """One row per key of the all-tasks board (`boards[None]`, rows by key), best first: the score
    0–100, its coverage, each term's rate, and a rank for those with at least `min_tasks` tasks."""
    rows = []
    for key, whole in boards[None].items():
        terms, weighed, weight = [], 0.0, 0.0
        for term in scheme.terms:
            rate = boards.get(term.source, {}).get(key, {}).get(term.figure)
            terms.append({"title": term.title, "figure": term.figure, "source": term.source,
                          "weight": term.weight, "rate": rate})
            if rate is not None:
                weighed += term.weight * ((1 - rate) if term.figure in LOWER_IS_BETTER else rate)
                weight += term.weight
        rows.append({"key": key, "tasks": whole["tasks"], "score": round(100 * weighed / weight, 1) if weight else None,
                     "coverage": round(weight, 4), "terms": terms, "rank": None})
    rows.sort(key=lambda r: (r["score"] is None, -(r["score"] or 0), -r["tasks"], r["key"]))
    ranked = [r for r in rows if r["score"] is not None and r["tasks"] >= scheme.min_tasks]
    for n, row in enumerate(ranked, start=1):
        row["rank"] = n
    return rows
