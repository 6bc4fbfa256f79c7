"""Hostile intake messages, generated with hypothesis from the intake models' own fields.

Each model's fields become a strategy that ignores their constraints (lengths, ranges, formats,
required fields sometimes dropped, unknown fields added), mixed with bytes that are not JSON at all
and the cases that once lost or crashed something (tests/unit/test_normalize.py has them one by one).
"""

from __future__ import annotations

import datetime as dt
import json
import types
import typing
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from pipeline.normalize import INTAKE_MODELS

# Put in every generated string: a dead letter's reason must never repeat a value a client sent.
ECHO_MARKER = "ECHO7QX"
ID_FIELDS = {"hotline": "ticket_no", "grid": "report_id", "sensor": "sensor_id", "whistle": "whistle_id"}
CN = dt.timezone(dt.timedelta(hours=8))


def value_of(annotation) -> st.SearchStrategy:
    """Any JSON value a field of this type could be sent as — in range or not."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return value_of(args[0])
    if origin in (typing.Union, types.UnionType):
        return st.one_of([value_of(a) for a in args])
    if origin is typing.Literal:
        return st.sampled_from(args) | st.text(max_size=8)
    if origin in (list, tuple, set, frozenset):
        return st.lists(value_of(args[0]) if args else st.text(), max_size=3)
    if annotation is type(None):
        return st.none()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return payload_of(annotation)
    if annotation in (dt.datetime,) or getattr(annotation, "__name__", "") == "AwareDatetime":
        return st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                            timezones=st.sampled_from([dt.timezone.utc, CN]) | st.none()).map(dt.datetime.isoformat)
    if annotation is dt.date:
        return st.dates().map(dt.date.isoformat)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers() | st.integers(min_value=-2**70, max_value=2**70)
    if annotation is float:
        return st.floats(allow_nan=True, allow_infinity=True) | st.integers()
    if annotation is str:
        return st.text(max_size=60).map(lambda s: s + ECHO_MARKER)
    return st.text(max_size=10).map(lambda s: s + ECHO_MARKER)  # a type not mapped here: a string anyway


def payload_of(model: type[BaseModel]) -> st.SearchStrategy:
    required = {n: value_of(f.annotation) for n, f in model.model_fields.items() if f.is_required()}
    optional = {n: value_of(f.annotation) for n, f in model.model_fields.items() if not f.is_required()}
    return st.fixed_dictionaries(required, optional=optional)


def mutated(payload: st.SearchStrategy) -> st.SearchStrategy:
    """A payload with one required field dropped, a junk field added, or a value made huge or odd."""
    odd_values = st.sampled_from([None, [], {}, True, -1e9, 1e308, "\x00" * 1000, "名" * 20_000, [[[[[[[]]]]]]]])

    def mutate(draw_payload: dict, choice: int, key: str, odd) -> dict:
        changed = dict(draw_payload)
        if choice == 0 and changed:
            changed.pop(sorted(changed)[len(key) % len(changed)])
        elif choice == 1:
            changed[key + ECHO_MARKER] = odd
        elif changed:
            changed[sorted(changed)[len(key) % len(changed)]] = odd
        return changed

    return st.builds(mutate, payload, st.integers(0, 2), st.text(max_size=6), odd_values)


def known_cases(source: str) -> list[bytes]:
    """What an outsider once broke things with (issue "Nothing lost, nothing silent")."""
    at = "2026-11-02T09:00:00+08:00"
    base = {"hotline": {"ticket_no": "H", "received_at": at, "text": "路灯坏了"},
            "grid": {"report_id": "G", "worker_id": "w", "grid_code": "g", "reported_at": at, "text": "x",
                     "location": {"lat": 28.2, "lon": 112.9}},
            "sensor": {"sensor_id": "S", "kind": "water_level", "unit": "cm", "measured_at": at, "value": 1.0,
                       "location": {"lat": 28.2, "lon": 112.9}},
            "whistle": {"whistle_id": "W", "unit": "a7-s01", "blown_at": at, "text": "x", "summoned_units": ["cgj"]}}[source]
    time_field = next(k for k in base if k.endswith("_at"))
    cases = [json.dumps(base | {time_field: f"{year:04d}-11-02T09:00:00+08:00"}).encode() for year in (1, 1899, 2400, 9999)]
    text_field = "text"
    cases += [json.dumps(base | {text_field: "路" * 300_000}, ensure_ascii=False).encode(),  # ≈ 900 KB
              json.dumps(base | {text_field: "\x00" * 150_000}).encode(),  # grows 6× escaped
              json.dumps(base | {"source": "<script>" + ECHO_MARKER}).encode(),
              json.dumps(base | {"category": "类" * 100_000}, ensure_ascii=False).encode(),
              b"[" * 50_000 + b"]" * 50_000, b"", b"\xff\xfe not utf-8", b"null", b"[]", b'"just a string"']
    if source == "sensor":
        cases += [(json.dumps({k: v for k, v in base.items() if k != "value"})[:-1] + f', "value": {v}}}').encode()
                  for v in ("1e308", "NaN", "Infinity", "-Infinity", "-1e9")]
    return cases


def draw_examples(strategy: st.SearchStrategy, n: int) -> list:
    """`n` examples of `strategy`, the same on every run (hypothesis derandomised, no database)."""
    drawn: list = []

    @settings(max_examples=n, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value):
        drawn.append(value)

    collect()
    return drawn


def hostile_messages(per_source: int, run_tag: str) -> Iterator[tuple[str, str, bytes]]:
    """(source, key, value): `per_source` generated messages per intake topic (derandomised: the same
    every run), then the known cases. Ids are made unique where a message has one as a string, so
    every message must end as its own incident or dead letter."""
    n = 0
    for source in INTAKE_MODELS:
        payloads = payload_of(INTAKE_MODELS[source])
        drawn = draw_examples(st.one_of(payloads, mutated(payloads), st.binary(max_size=64)), per_source)
        for value in drawn[:per_source]:
            n += 1
            key = f"{run_tag}-{n}"
            if isinstance(value, dict):
                if isinstance(value.get(ID_FIELDS[source]), str):
                    value[ID_FIELDS[source]] = key
                value = json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
            yield source, key, value
        for value in known_cases(source):
            n += 1
            key = f"{run_tag}-{n}"
            if value.startswith(b"{"):
                payload = json.loads(value)
                payload[ID_FIELDS[source]] = key
                value = json.dumps(payload, ensure_ascii=False).encode()
            yield source, key, value
