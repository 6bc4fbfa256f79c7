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

from pipeline.dutylists import load_registry
from pipeline.locate import Locator
from schemas import CityRegistry

_CN = dt.timezone(dt.timedelta(hours=8))
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
# (the class the worker picks — GB/T 30428 leaf names, as in the duty list's grid_classes —, the note)
_GRID_EVENTS = [
    ("道路破损", "路面破损，坑洼积水"),
    ("乱堆物堆料", "人行道乱堆物堆料，影响通行"),
    ("道路不洁", "路面有大量建筑垃圾和渣土"),
    ("占道经营", "流动摊贩占道经营"),
    ("井盖", "窨井井盖缺失，存在安全隐患"),
    ("私搭乱建", "居民楼顶私搭乱建"),
    ("消防通道堵塞", "消防通道被车辆堵塞"),
    ("暴露垃圾", "垃圾桶满溢，垃圾散落路面"),
    ("非法小广告", "墙面电线杆张贴小广告"),
    ("机动车乱停放", "机动车占用人行道停放"),
    ("路灯", "路灯不亮"),
    ("施工扰民", "工地夜间施工噪音大"),
    ("行道树", "行道树枝条倒伏挡路"),
]
_SENSORS = [("water_level", "cm", 35, 80), ("manhole_tilt", "deg", 10, 45), ("smoke", "obs%/m", 5, 20),
            ("noise", "dB(A)", 70, 95), ("gas", "%LEL", 20, 60)]
_WHISTLE_UNITS = ["cgj", "zjj", "sthjj", "xfzd", "scjgj", "gaj-jj", "zrzyj"]


class _City:
    """What the generator needs from the registry: grids to stand in, streets to name."""

    def __init__(self, registry: CityRegistry):
        units = {u.code: u for u in registry.units}
        self.grids = [(g.code, g.polygon) for g in registry.grids]
        self.streets = [u for u in registry.units if u.kind == "street"]
        self.communities = [u.code for u in registry.units if u.kind == "community"]
        self.district_name = {u.code: units[u.parent].name for u in self.streets}
        self.locator = Locator(registry)


@dataclass(frozen=True)
class IntakeEvent:
    source: str
    key: str
    value: bytes
    valid: bool


def generate(n: int, *, seed: int = 7, run_tag: str = "demo", texts: Sequence[tuple[str, str]] = (),
             bad_fraction: float = 0.02, start: dt.datetime | None = None,
             registry: CityRegistry | None = None) -> Iterator[IntakeEvent]:
    """`n` events; places come from `registry` (the sample city by default)."""
    rng = random.Random(seed)
    city = _City(registry or load_registry())
    # A few spots where the same problem is reported again and again (a broken manhole on a busy
    # road): these reports merge into one case, and enough of them make a hotspot.
    hot_spots = [(rng.choice(_GRID_EVENTS), *_in_grid(rng, city)) for _ in range(max(1, n // 400))]
    start = start or dt.datetime(2026, 11, 2, 8, 30, tzinfo=_CN)
    for i in range(n):
        at = start + dt.timedelta(seconds=7 * i)
        roll = rng.random()
        if roll < 0.60:
            source, payload = "hotline", _hotline(rng, city, i, run_tag, at, texts)
        elif roll < 0.85:
            source, payload = "grid", _grid(rng, city, i, run_tag, at, hot_spots)
        elif roll < 0.95:
            source, payload = "sensor", _sensor(rng, city, i, run_tag, at)
        else:
            source, payload = "whistle", _whistle(rng, city, i, run_tag, at)
        key = f"{run_tag}-{i}"
        if rng.random() < bad_fraction:
            yield IntakeEvent(source, key, _break(rng, payload), valid=False)
        else:
            yield IntakeEvent(source, key, json.dumps(payload, ensure_ascii=False).encode(), valid=True)


def _in_grid(rng: random.Random, city: _City) -> tuple[str, dict]:
    """A grid and a GPS point inside it."""
    code, ring = rng.choice(city.grids)
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return code, {"lat": round(rng.uniform(min(lats), max(lats)), 6), "lon": round(rng.uniform(min(lons), max(lons)), 6)}


def _point(rng: random.Random, city: _City) -> dict:
    # One fix in fifty lands outside the city's grids (GPS drift, a wrong reading) and must be flagged.
    if rng.random() < 0.02:
        return {"lat": round(rng.uniform(29.5, 30.0), 6), "lon": round(rng.uniform(114.0, 114.5), 6)}
    return _in_grid(rng, city)[1]


def _hotline(rng: random.Random, city: _City, i: int, run_tag: str, at: dt.datetime,
             texts: Sequence[tuple[str, str]]) -> dict:
    street = rng.choice(city.streets)
    where: dict = {}
    if texts:
        # A 12345 call-taker picks the district and street the caller names from the system's lists
        # (unit codes); a message naming no place the registry knows gets none (as on a web form).
        title, text = texts[rng.randrange(len(texts))]
        address = None
        named = city.locator.from_text(f"{title} {text}", "text")
        if named is not None and named.district:
            where["district"] = named.district
            if named.street:
                where["street"] = named.street
    else:
        title, template = rng.choice(_BUILTIN_TEXTS)
        text = template.format(street=street.name)
        address = f"A市{city.district_name[street.code]}{street.name}"
    ticket = {
        "ticket_no": f"{run_tag}-12345-{i:07d}", "received_at": at.isoformat(),
        "channel": rng.choice(["phone", "phone", "phone", "web", "app", "wechat"]),
        "caller_name": rng.choice(["张先生", "李女士", "王先生", "刘女士", None]),
        "caller_phone": f"1{rng.choice('3578')}{rng.randrange(10**9):09d}",
        "title": title, "text": text, **where,
    }
    if address:
        ticket["address"] = address
    if rng.random() < 0.3:
        ticket["location"] = _point(rng, city)
    return ticket


def _grid(rng: random.Random, city: _City, i: int, run_tag: str, at: dt.datetime, hot_spots: list) -> dict:
    if rng.random() < 0.15:
        (category, text), grid_code, spot = rng.choice(hot_spots)
        # GPS scatter of a few metres around the spot
        location = {"lat": round(spot["lat"] + rng.uniform(-2e-4, 2e-4), 6),
                    "lon": round(spot["lon"] + rng.uniform(-2e-4, 2e-4), 6)}
        return _grid_report(rng, i, run_tag, at, category, text, grid_code, location)
    category, text = rng.choice(_GRID_EVENTS)
    grid_code, location = _in_grid(rng, city)
    if rng.random() < 0.03:  # the worker left the app on a neighbouring grid: the GPS check flags it
        grid_code = rng.choice(city.grids)[0]
    return _grid_report(rng, i, run_tag, at, category, text, grid_code, location)


def _grid_report(rng: random.Random, i: int, run_tag: str, at: dt.datetime, category: str, text: str,
                 grid_code: str, location: dict) -> dict:
    return {
        "report_id": f"{run_tag}-grid-{i:07d}", "worker_id": f"w{rng.randrange(1, 400):04d}",
        "grid_code": grid_code, "reported_at": at.isoformat(),
        "text": text, "photo_urls": [f"https://img.example.org/grid/{run_tag}/{i}.jpg"],
        "location": location, "category": category,
    }


def _sensor(rng: random.Random, city: _City, i: int, run_tag: str, at: dt.datetime) -> dict:
    kind, unit, low, high = rng.choice(_SENSORS)
    grid_code, location = _in_grid(rng, city)
    return {
        "sensor_id": f"{run_tag}-{kind}-{rng.randrange(1, 200):04d}", "kind": kind, "unit": unit,
        # Each reading is distinct in time so its deterministic id is distinct too.
        "value": round(rng.uniform(low, high), 1), "measured_at": (at + dt.timedelta(milliseconds=i)).isoformat(),
        "location": location, "grid_code": grid_code,
    }


def _whistle(rng: random.Random, city: _City, i: int, run_tag: str, at: dt.datetime) -> dict:
    category, text = rng.choice(_GRID_EVENTS)
    summoned = rng.sample(_WHISTLE_UNITS, rng.randint(1, 3))
    if rng.random() < 0.05:  # a whistle that tries to hand the job to a community: refused (no 摊派)
        summoned.append(rng.choice(city.communities))
    return {
        "whistle_id": f"{run_tag}-whistle-{i:07d}", "unit": rng.choice(city.streets).code, "blown_at": at.isoformat(),
        "text": f"{text}，街道多次处置未果，吹哨请相关部门联合处置。", "summoned_units": summoned,
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
