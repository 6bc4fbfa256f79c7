"""The unit head: a linear SVM picks the unit, and the confidence that the pick is right is learnt out of
fold from what the pick looks like (its score, its lead, how many reports of its unit taught it)."""

from __future__ import annotations

import pickle

import numpy as np
from scipy import sparse

from pipeline.textmodel import UnitHead

WIDTH = 1000
UNITS = ["cgj", "jyj", "rsj", "zjj"]


def reports(rng: np.random.Generator, unit_words: dict[str, list[int]], n: int,
            stray: float = 0.0) -> tuple[sparse.csr_matrix, list[str]]:
    """n reports per unit: three of the unit's own words and two words any report may have; with
    probability `stray`, two of another unit's words as well (a report that reads like both)."""
    rows, units = [], []
    for unit, own in unit_words.items():
        others = [w for u, ws in unit_words.items() if u != unit for w in ws]
        for _ in range(n):
            row = np.zeros(WIDTH)
            row[rng.choice(own, 3, replace=False)] = 1.0
            row[rng.integers(500, WIDTH, 2)] = 1.0
            if rng.random() < stray:
                row[rng.choice(others, 2, replace=False)] = 1.0
            rows.append(row / np.linalg.norm(row))
            units.append(unit)
    return sparse.csr_matrix(np.array(rows)), units


def words_of(units: list[str]) -> dict[str, list[int]]:
    return {unit: list(range(20 * k, 20 * k + 20)) for k, unit in enumerate(units)}


def confusable_units() -> dict[str, list[int]]:
    """zjj's words are half cgj's own (物业 and 城管 share many)."""
    words = words_of(UNITS)
    words["zjj"] = words["zjj"][:10] + words["cgj"][:10]
    return words


def test_a_clear_report_is_surer_than_one_with_as_much_of_two_units_words():
    features, units = reports(np.random.default_rng(1), confusable_units(), 60, stray=0.5)
    head = UnitHead.fit(features, units)
    clear, shared = np.zeros(WIDTH), np.zeros(WIDTH)
    clear[[20, 21, 22]] = 1.0  # jyj's words only
    shared[[10, 11, 60, 61]] = 1.0  # two words only cgj has, two only zjj has
    both = np.array([clear / np.linalg.norm(clear), shared / np.linalg.norm(shared)])  # as TF-IDF rows are
    (clear_unit, clear_p), (_, shared_p) = head.decide(sparse.csr_matrix(both))
    assert clear_unit == "jyj" and clear_p > 0.99 and shared_p < 0.9


def test_the_confidence_says_how_often_such_picks_are_right():
    # Half of all reports also read like another unit's: the head is often wrong, more so on some picks.
    features, units = reports(np.random.default_rng(1), confusable_units(), 60, stray=0.5)
    head = UnitHead.fit(features, units)
    test_features, test_units = reports(np.random.default_rng(2), confusable_units(), 200, stray=0.5)
    decided = head.decide(test_features)
    confidence = np.array([p for _, p in decided])
    right = np.array([u == t for (u, _), t in zip(decided, test_units, strict=True)])
    sure, unsure = confidence >= 0.97, confidence < 0.9
    assert sure.sum() > 100 and unsure.sum() > 100
    assert right[sure].mean() >= 0.95 and right[unsure].mean() < 0.85
    # calibrated overall: the mean confidence is the share right, within a few points
    assert abs(confidence.mean() - right.mean()) < 0.03


def test_a_head_of_two_units_decides_both():
    features, units = reports(np.random.default_rng(3), words_of(["cgj", "jyj"]), 20)
    head = UnitHead.fit(features, units)
    decided = head.decide(features)
    assert [u for u, _ in decided] == units and min(p for _, p in decided) > 0.5


def test_a_head_too_small_to_judge_its_picks_is_unsure():
    # Three reports, three units: every out-of-fold pick names a unit the fold never saw, so is wrong.
    features, units = reports(np.random.default_rng(4), words_of(["cgj", "jyj", "rsj"]), 1)
    head = UnitHead.fit(features, units)
    assert all(p == 0.2 for _, p in head.decide(features))  # (0 right + 1) / (3 picks + 2)


def test_near_twins_never_vouch_for_each_other():
    # Every report is there twice: without groups the held-out half's twin taught the fold, and each
    # pick looks right; with the twins kept together the head learns how sure it may be.
    rng = np.random.default_rng(5)
    words = words_of(UNITS)
    words["zjj"] = words["cgj"]  # zjj and cgj cannot be told apart
    features, units = reports(rng, words, 31)  # 124 reports: a twin 124 rows on falls in another fold
    twice, units_twice = sparse.vstack([features, features]), units + units
    groups = list(range(len(units))) * 2
    apart = UnitHead.fit(twice, units_twice, groups=groups)
    mixed = UnitHead.fit(twice, units_twice)
    cgj_report = features[:1] if units[0] == "cgj" else features[units.index("cgj"):units.index("cgj") + 1]
    assert apart.decide(cgj_report)[0][1] < mixed.decide(cgj_report)[0][1]


def test_a_saved_head_decides_as_it_did():
    features, units = reports(np.random.default_rng(6), words_of(UNITS), 10)
    head = UnitHead.fit(features, units)
    assert pickle.loads(pickle.dumps(head)).decide(features) == head.decide(features)
