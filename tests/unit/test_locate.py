"""Location resolution on the sample city: GPS, grid codes, address text; never a guess."""

from __future__ import annotations

import json

import pytest
import shapely

from pipeline.locate import Locator


def centre_of(locator: Locator, grid: str) -> tuple[float, float]:
    c = shapely.Polygon(locator.grids[grid].polygon).centroid
    return c.y, c.x


def test_gps_resolves_down_to_the_grid(sample_locator: Locator):
    grid = next(iter(sample_locator.grids))
    lat, lon = centre_of(sample_locator, grid)
    where = sample_locator.resolve(lat=lat, lon=lon)
    community = sample_locator.grids[grid].community
    assert (where.grid, where.community, where.method, where.problem) == (grid, community, "gps", None)
    assert where.street == sample_locator.units[community].parent
    assert where.district == sample_locator.units[where.street].parent


def test_every_grid_centre_resolves_to_its_own_grid(sample_locator: Locator):
    for grid in sample_locator.grids:
        assert sample_locator.grid_at(*centre_of(sample_locator, grid)) == grid


def test_grid_code_is_checked_against_gps(sample_locator: Locator):
    first, second = list(sample_locator.grids)[:2]
    where = sample_locator.resolve(lat=centre_of(sample_locator, first)[0], lon=centre_of(sample_locator, first)[1],
                                   grid_code=second)
    assert where.grid == first
    assert f"grid code {second} does not match the GPS position (grid {first})" in where.problem


def test_gps_outside_the_city_falls_back_to_the_grid_code_and_says_so(sample_locator: Locator):
    grid = next(iter(sample_locator.grids))
    where = sample_locator.resolve(lat=30.5, lon=114.3, grid_code=grid)
    assert where.grid == grid and where.method == "grid_code"
    assert "outside the city's grids" in where.problem


@pytest.mark.parametrize(("text", "street_name", "level"), [
    ("A3区西湖街道安置办一直没给我安置", "西湖街道", "street"),
    ("A2区暮云街道丽发新城小区旁搅拌站噪音", "暮云街道", "community"),   # an estate alias names the community
    ("A7县星沙镇某工地夜间施工", "星沙街道", "street"),                  # the old name of the same street
    ("A8县白马桥街道二环南路的路灯不亮了", "白马桥街道", "street"),
])
def test_address_text_resolves_to_the_street(sample_locator: Locator, text, street_name, level):
    where = sample_locator.resolve(text=text)
    assert sample_locator.units[where.street].name == street_name
    assert where.level == level and where.method == "text"


def test_two_streets_of_one_district_resolve_to_the_district_only(sample_locator: Locator):
    where = sample_locator.resolve(text="A7县泉塘街道和星沙街道交界处的道路破损")
    assert (where.street, where.district) == (None, "a7")
    assert "names several streets" in where.problem


def test_places_in_different_districts_are_not_guessed(sample_locator: Locator):
    where = sample_locator.resolve(text="从暮云街道到跳马镇的公交线路")
    assert where.level == "unresolved" and "different districts" in where.problem


def test_a_district_rules_out_same_named_places_elsewhere(sample_locator: Locator):
    where = sample_locator.resolve(text="A3区某小区")
    assert (where.district, where.street) == ("a3", None)


def test_nothing_known_is_unresolved_with_a_reason(sample_locator: Locator):
    where = sample_locator.resolve(text="我家楼下的路灯坏了")
    assert where.level == "unresolved" and where.problem == "no GPS, grid code, or place name the registry knows"


def test_reported_street_by_name_or_code(sample_locator: Locator):
    assert sample_locator.resolve(street="泉塘街道").street == "a7-s01"
    assert sample_locator.resolve(street="a7-s01").method == "reported"


def test_resolution_of_the_real_messages(sample_locator: Locator, shared_data):
    """Most real messages name at least their district; many name a street. Nothing is guessed:
    every unresolved one carries a reason."""
    rows = [json.loads(line) for line in (shared_data / "zh-gov-messages" / "unlabelled.jsonl").open(encoding="utf-8")]
    found = [sample_locator.resolve(text=r["title"] + " " + r["text"]) for r in rows]
    levels = [w.level for w in found]
    street_or_below = sum(level in ("street", "community") for level in levels) / len(rows)
    named_district = sum(level != "unresolved" for level in levels) / len(rows)
    assert street_or_below > 0.10 and named_district > 0.40
    assert all(w.problem for w in found if w.level == "unresolved")
