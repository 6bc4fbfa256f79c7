"""The load generator is deterministic and its bad events are exactly the ones the normaliser rejects."""

import datetime as dt
import json

import pytest

from pipeline.dutylists import load_registry
from pipeline.loadgen import generate
from pipeline.locate import Locator
from pipeline.normalize import IntakeError, parse_intake, to_incident

NOW = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)
LOCATOR = Locator(load_registry())


def test_same_seed_same_events():
    assert list(generate(200, seed=3)) == list(generate(200, seed=3))
    assert list(generate(200, seed=3)) != list(generate(200, seed=4))


def test_all_four_sources_appear():
    assert {e.source for e in generate(500)} == {"hotline", "grid", "sensor", "whistle"}


def test_valid_events_parse_and_broken_ones_are_rejected():
    events = list(generate(2000, bad_fraction=0.05))
    broken = [e for e in events if not e.valid]
    assert 50 < len(broken) < 150
    for event in events:
        if event.valid:
            to_incident(parse_intake(event.source, event.value), salt="s", now=NOW, locator=LOCATOR)
        else:
            with pytest.raises(IntakeError):
                parse_intake(event.source, event.value)


def test_incident_ids_are_unique_within_a_run():
    incidents = [to_incident(parse_intake(e.source, e.value), salt="s", now=NOW, locator=LOCATOR)
                 for e in generate(3000, bad_fraction=0) if e.valid]
    assert len({i.incident_id for i in incidents}) == len(incidents)


def test_real_texts_are_used_when_given():
    texts = [("标题甲", "真实留言内容甲"), ("标题乙", "真实留言内容乙")]
    hotline = [json.loads(e.value) for e in generate(100, texts=texts, bad_fraction=0) if e.source == "hotline"]
    assert hotline and {t["text"] for t in hotline} <= {"真实留言内容甲", "真实留言内容乙"}


def test_a_call_taker_records_the_street_a_real_message_names_and_none_otherwise():
    texts = [("A7县泉塘街道路灯不亮", "晚上很黑"), ("路灯不亮", "晚上很黑，没有地名")]
    hotline = [json.loads(e.value) for e in generate(200, texts=texts, bad_fraction=0) if e.source == "hotline"]
    named = [t for t in hotline if t["title"].startswith("A7县")]
    unnamed = [t for t in hotline if not t["title"].startswith("A7县")]
    assert named and all((t["district"], t["street"]) == ("a7", "a7-s01") for t in named)
    assert unnamed and all("street" not in t and "district" not in t for t in unnamed)
