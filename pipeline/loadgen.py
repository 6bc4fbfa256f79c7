"""Realistic intake events from all four sources, deterministic for a given seed.

Hotline texts are real citizen messages when the caller passes them in (see `cityops demo`),
otherwise short built-in templates. A small share of events is deliberately broken so the
dead-letter path is exercised on every run.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

# Centre of the sample city "A市" (the real messages come from Changsha, Hunan).
_CITY_LAT, _CITY_LON = 28.23, 112.94
_CN = dt.timezone(dt.timedelta(hours=8))

_STREETS = ["泉塘街道", "星沙街道", "黄兴镇", "暮云街道"]
_BUILTIN_TEXTS = [
    ("小区噪音扰民", "{street}某小区旁工地夜间施工，噪音扰民严重，希望有关部门处理。"),
    ("路灯不亮", "{street}主干道路灯已经坏了一个多星期，晚上出行很不安全。"),
    ("拖欠工资", "我在{street}一工地务工，老板拖欠工资三个月，请求帮助讨薪。"),
    ("物业问题", "{street}某小区物业不作为，电梯经常故障，物业费却年年涨。"),
    ("违章建筑", "{street}有业主在楼顶私搭乱建，存在安全隐患。"),
    ("公交站台", "建议在{street}增设公交站台，方便居民出行。"),
    ("孩子入学", "孩子今年入学，{street}附近学校招生政策不清楚，请解答。"),
    ("餐馆卫生", "{street}一家餐馆食品安全问题严重，吃完后腹泻。"),
    ("医保报销", "异地就医医保报销流程复杂，{street}社区无法办理。"),
    ("停水", "{street}已经停水两天，没有任何通知。"),
]
_GRID_EVENTS = [
    ("道路破损", "路面破损，坑洼积水"),
    ("乱堆物堆料", "人行道乱堆物堆料，影响通行"),
    ("道路不洁", "路面有大量建筑垃圾和渣土"),
    ("占道经营", "流动摊贩占道经营"),
    ("井盖缺失", "窨井井盖缺失，存在安全隐患"),
    ("违章建筑", "居民楼顶私搭乱建"),
    ("消防通道堵塞", "消防通道被车辆堵塞"),
]
_SENSORS = [("water_level", "cm", 35, 80), ("manhole_tilt", "deg", 10, 45), ("smoke", "obs%/m", 5, 20),
            ("noise", "dB(A)", 70, 95), ("gas", "%LEL", 20, 60)]
_WHISTLE_UNITS = ["cgj", "zjj", "sthjj", "xfzd", "scjgj"]
_WHISTLE_STREETS = ["jd-quantang", "jd-xingsha", "zh-huangxing", "jd-muyun"]


@dataclass(frozen=True)
class IntakeEvent:
    source: str
    key: str
    value: bytes
    valid: bool


def generate(n: int, *, seed: int = 7, run_tag: str = "demo", texts: Sequence[tuple[str, str]] = (),
             bad_fraction: float = 0.02, start: dt.datetime | None = None) -> Iterator[IntakeEvent]:
    rng = random.Random(seed)
    start = start or dt.datetime(2026, 11, 2, 8, 30, tzinfo=_CN)
    for i in range(n):
        at = start + dt.timedelta(seconds=7 * i)
        roll = rng.random()
        if roll < 0.60:
            source, payload = "hotline", _hotline(rng, i, run_tag, at, texts)
        elif roll < 0.85:
            source, payload = "grid", _grid(rng, i, run_tag, at)
        elif roll < 0.95:
            source, payload = "sensor", _sensor(rng, i, run_tag, at)
        else:
            source, payload = "whistle", _whistle(rng, i, run_tag, at)
        key = f"{run_tag}-{i}"
        if rng.random() < bad_fraction:
            yield IntakeEvent(source, key, _break(rng, payload), valid=False)
        else:
            yield IntakeEvent(source, key, json.dumps(payload, ensure_ascii=False).encode(), valid=True)


def _point(rng: random.Random) -> dict:
    return {"lat": round(_CITY_LAT + rng.uniform(-0.15, 0.15), 6), "lon": round(_CITY_LON + rng.uniform(-0.15, 0.15), 6)}


def _hotline(rng: random.Random, i: int, run_tag: str, at: dt.datetime, texts: Sequence[tuple[str, str]]) -> dict:
    street = rng.choice(_STREETS)
    if texts:
        title, text = texts[rng.randrange(len(texts))]
    else:
        title, template = rng.choice(_BUILTIN_TEXTS)
        text = template.format(street=street)
    ticket = {
        "ticket_no": f"{run_tag}-12345-{i:07d}", "received_at": at.isoformat(),
        "channel": rng.choice(["phone", "phone", "phone", "web", "app", "wechat"]),
        "caller_name": rng.choice(["张先生", "李女士", "王先生", "刘女士", None]),
        "caller_phone": f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
        "title": title, "text": text, "address": f"A市{street}",
    }
    if rng.random() < 0.3:
        ticket["location"] = _point(rng)
    return ticket


def _grid(rng: random.Random, i: int, run_tag: str, at: dt.datetime) -> dict:
    category, text = rng.choice(_GRID_EVENTS)
    return {
        "report_id": f"{run_tag}-grid-{i:07d}", "worker_id": f"w{rng.randrange(1, 400):04d}",
        "grid_code": f"430121{rng.randrange(1, 13):03d}{rng.randrange(1, 30):03d}", "reported_at": at.isoformat(),
        "text": text, "photo_urls": [f"https://img.example.org/grid/{run_tag}/{i}.jpg"],
        "location": _point(rng), "category": category,
    }


def _sensor(rng: random.Random, i: int, run_tag: str, at: dt.datetime) -> dict:
    kind, unit, low, high = rng.choice(_SENSORS)
    return {
        "sensor_id": f"{run_tag}-{kind}-{rng.randrange(1, 200):04d}", "kind": kind, "unit": unit,
        # Each reading is distinct in time so its deterministic id is distinct too.
        "value": round(rng.uniform(low, high), 1), "measured_at": (at + dt.timedelta(milliseconds=i)).isoformat(),
        "location": _point(rng),
    }


def _whistle(rng: random.Random, i: int, run_tag: str, at: dt.datetime) -> dict:
    category, text = rng.choice(_GRID_EVENTS)
    return {
        "whistle_id": f"{run_tag}-whistle-{i:07d}", "unit": rng.choice(_WHISTLE_STREETS), "blown_at": at.isoformat(),
        "text": f"{text}，街道多次处置未果，吹哨请相关部门联合处置。",
        "summoned_units": rng.sample(_WHISTLE_UNITS, rng.randint(1, 3)),
    }


def _break(rng: random.Random, payload: dict) -> bytes:
    """One of the faults real integrations send: truncated JSON, a missing or malformed field."""
    broken = dict(payload)
    fault = rng.randrange(4)
    if fault == 0:
        return json.dumps(broken, ensure_ascii=False).encode()[:-7]
    if fault == 1:
        broken.pop("text", None) or broken.pop("kind", None)
    elif fault == 2:
        broken["location"] = {"lat": 128.2, "lon": 112.9}
    else:
        broken["unexpected_field"] = "?"
    return json.dumps(broken, ensure_ascii=False).encode()
