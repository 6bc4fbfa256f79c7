"""Department and street scores from the SLA board's rates, by the city's weighting schemes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pipeline.scores import load_schemes, score, sources_needed
from schemas.scores import ScoreScheme


def scheme(*terms: tuple[str, float, str | None], min_tasks: int = 5) -> ScoreScheme:
    return ScoreScheme(title="t", title_en="t", min_tasks=min_tasks,
                       terms=[{"figure": f, "weight": w, "source": s, "title": f} for f, w, s in terms])


def test_a_score_is_the_weighted_rates_and_the_best_ranks_first():
    three = scheme(("response_rate", 0.3, None), ("resolution_rate", 0.35, None), ("satisfaction_rate", 0.35, None))
    rows = score(three, {None: {
        "cgj": {"tasks": 40, "response_rate": 1.0, "resolution_rate": 0.8, "satisfaction_rate": 0.6},
        "zjj": {"tasks": 30, "response_rate": 0.5, "resolution_rate": 1.0, "satisfaction_rate": 1.0},
    }})
    assert [(r["key"], r["score"], r["rank"]) for r in rows] == [("zjj", 85.0, 1), ("cgj", 79.0, 2)]
    assert rows[1]["terms"][1] == {"title": "resolution_rate", "figure": "resolution_rate", "source": None,
                                   "weight": 0.35, "rate": 0.8}


def test_a_term_without_data_is_left_out_and_the_others_rescale():
    seven_three = scheme(("satisfaction_rate", 0.7, "hotline"), ("satisfaction_rate", 0.3, "whistle"))
    assert sources_needed(seven_three) == ["hotline", "whistle"]
    rows = score(seven_three, {None: {"cgj": {"tasks": 9}, "zjj": {"tasks": 9}},
                               "hotline": {"cgj": {"satisfaction_rate": 0.9}, "zjj": {"satisfaction_rate": 0.5}},
                               "whistle": {"zjj": {"satisfaction_rate": 1.0}}})
    by_key = {r["key"]: r for r in rows}
    assert by_key["cgj"]["score"] == 90.0 and by_key["cgj"]["coverage"] == 0.7  # no whistle answered
    assert by_key["zjj"]["score"] == 65.0 and by_key["zjj"]["coverage"] == 1.0


def test_rework_counts_against_and_few_tasks_are_scored_but_not_ranked():
    plan = scheme(("closure_rate", 0.5, None), ("rework_rate", 0.5, None), min_tasks=10)
    rows = score(plan, {None: {"a": {"tasks": 12, "closure_rate": 1.0, "rework_rate": 0.2},
                               "b": {"tasks": 3, "closure_rate": 1.0, "rework_rate": 0.0},
                               "c": {"tasks": 20, "closure_rate": None, "rework_rate": None}}})
    assert [(r["key"], r["score"], r["rank"]) for r in rows] == [("b", 100.0, None), ("a", 90.0, 1), ("c", None, None)]


def test_weights_must_sum_to_one():
    with pytest.raises(ValidationError, match="sum to 0.9"):
        scheme(("response_rate", 0.5, None), ("satisfaction_rate", 0.4, None))


def test_the_sample_city_ships_the_three_rates_pudong_and_whistle_schemes():
    schemes = load_schemes()
    assert schemes.default in schemes.schemes
    assert {"three-rates", "pudong-7-3", "whistle-30"} <= set(schemes.schemes)
    assert [t.weight for t in schemes.schemes["pudong-7-3"].terms] == [0.7, 0.3]
