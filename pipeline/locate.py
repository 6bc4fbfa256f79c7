"""Where did it happen? GPS → grid → community → street → district, or address text → street.

Never a guess: a location that cannot be resolved, or resolves to several places, is reported
with the reason, at the level that is certain (a district when two of its streets are named).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import ahocorasick_rs
import shapely
from shapely import STRtree

from schemas.dutylist import CityRegistry, Unit

Method = Literal["gps", "grid_code", "reported", "address", "text", "none"]


@dataclass(frozen=True)
class Location:
    district: str | None = None
    street: str | None = None
    community: str | None = None
    grid: str | None = None
    method: Method = "none"
    problem: str | None = None  # why it is incomplete or doubtful; None when clean

    @property
    def level(self) -> str:
        for level in ("grid", "community", "street", "district"):
            if getattr(self, level):
                return level
        return "unresolved"


class Locator:
    def __init__(self, registry: CityRegistry):
        self.units: dict[str, Unit] = {u.code: u for u in registry.units}
        self.grids = {g.code: g for g in registry.grids}
        self._grid_codes = [g.code for g in registry.grids]
        self._polygons = [shapely.Polygon(g.polygon) for g in registry.grids]
        self._tree = STRtree(self._polygons)
        # Longest names first, so 丽发新城小区 wins over 丽发新城 and 暮云街道 over 暮云.
        names: dict[str, set[str]] = {}
        for unit in registry.units:
            if unit.kind in ("district", "street", "community"):
                for name in {unit.name, *unit.aliases}:
                    names.setdefault(name, set()).add(unit.code)
        self._gazetteer = sorted(names.items(), key=lambda kv: -len(kv[0]))
        # Every name's occurrences in one pass (≈160 µs a message took one str.find per name).
        self._names = ahocorasick_rs.AhoCorasick([name for name, _ in self._gazetteer])

    # -------------------------------------------------------------------------------- pieces

    def grid_at(self, lat: float, lon: float) -> str | None:
        point = shapely.Point(lon, lat)
        hits = self._tree.query(point, predicate="intersects")
        # On a shared edge a point touches two grids; the lowest code decides, every time.
        return min((self._grid_codes[i] for i in hits), default=None)

    def from_grid(self, grid: str, method: Method, problem: str | None = None) -> Location:
        community = self.grids[grid].community
        street = self.units[community].parent
        return Location(self._parent(street), street, community, grid, method, problem)

    def from_unit(self, code: str, method: Method, problem: str | None = None) -> Location:
        unit = self.units[code]
        if unit.kind == "community":
            return Location(self._parent(unit.parent), unit.parent, code, None, method, problem)
        if unit.kind == "street":
            return Location(unit.parent, code, None, None, method, problem)
        if unit.kind == "district":
            return Location(code, None, None, None, method, problem)
        raise ValueError(f"{code} is a {unit.kind}, not a place")

    def from_text(self, text: str, method: Method) -> Location | None:
        """Gazetteer match: the most specific place the text names without contradiction, or None."""
        found: set[str] = set()
        taken = [False] * len(text)
        # Name by name in gazetteer order (longest first), each name's occurrences left to right, the
        # next one searched after the end of the last (as str.find would): a name claims its span
        # unless a longer name took part of it.
        searched_from: dict[int, int] = {}
        for index, start, end in sorted(self._names.find_matches_as_indexes(text, overlapping=True)):
            if start < searched_from.get(index, 0):
                continue
            searched_from[index] = end
            if not any(taken[start:end]):
                found |= self._gazetteer[index][1]
                taken[start:end] = [True] * (end - start)
        if not found:
            return None
        districts = {c for c in found if self.units[c].kind == "district"}
        places = [c for c in found if self.units[c].kind != "district"]
        if districts:  # a named district rules out same-named places elsewhere
            places = [c for c in places if self._district_of(c) in districts]
        streets = {self._street_of(c) for c in places}
        if len(streets) == 1:
            street = streets.pop()
            communities = {c for c in places if self.units[c].kind == "community"}
            if len(communities) == 1:
                return self.from_unit(communities.pop(), method)
            return self.from_unit(street, method)
        if len(streets) > 1:
            names = "、".join(sorted(self.units[s].name for s in streets))
            owners = {self._district_of(s) for s in streets} | districts
            if len(owners) == 1:
                return self.from_unit(owners.pop(), method, f"names several streets ({names}); district only")
            return Location(method="none", problem=f"names places in different districts ({names})")
        if len(districts) == 1:
            return self.from_unit(districts.pop(), method)
        names = "、".join(sorted(self.units[d].name for d in districts))
        return Location(method="none", problem=f"names several districts ({names})")

    # -------------------------------------------------------------------------------- resolve

    def resolve(self, *, lat: float | None = None, lon: float | None = None, grid_code: str | None = None,
                street: str | None = None, district: str | None = None, address: str | None = None,
                text: str = "") -> Location:
        """The best-founded location from what a report carries, in order of reliability."""
        problems: list[str] = []
        if grid_code and grid_code not in self.grids:
            problems.append(f"grid code {grid_code} is not in the registry")
            grid_code = None
        if lat is not None and lon is not None:
            gps_grid = self.grid_at(lat, lon)
            if gps_grid is None:
                problems.append(f"GPS {lat:.5f},{lon:.5f} is outside the city's grids")
            else:
                if grid_code and grid_code != gps_grid:
                    problems.append(f"grid code {grid_code} does not match the GPS position (grid {gps_grid})")
                return self.from_grid(gps_grid, "gps", _join(problems))
        if grid_code:
            return self.from_grid(grid_code, "grid_code", _join(problems))
        reported = self._reported_unit(street) or self._reported_unit(district)
        if reported:
            return self.from_unit(reported, "reported", _join(problems))
        for source, method in ((" ".join(filter(None, [district, street, address])), "address"), (text, "text")):
            if source:
                found = self.from_text(source, method)
                if found is not None and found.level != "unresolved":
                    return Location(found.district, found.street, found.community, found.grid, found.method,
                                    _join([*problems, found.problem]))
                if found is not None:
                    problems.append(f"{method} {found.problem}")
        if not problems:
            problems.append("no GPS, grid code, or place name the registry knows")
        return Location(method="none", problem=_join(problems))

    def _reported_unit(self, value: str | None) -> str | None:
        """A street or district given as a unit code or exactly as its registered name."""
        if not value:
            return None
        if value in self.units and self.units[value].kind in ("district", "street", "community"):
            return value
        matches = [code for name, codes in self._gazetteer if name == value for code in codes]
        return matches[0] if len(matches) == 1 else None

    def _parent(self, code: str | None) -> str | None:
        return self.units[code].parent if code else None

    def _street_of(self, code: str) -> str:
        unit = self.units[code]
        return unit.parent if unit.kind == "community" else code

    def _district_of(self, code: str) -> str | None:
        return self.units[self._street_of(code)].parent


def _join(problems: list[str | None]) -> str | None:
    kept = [p for p in problems if p]
    return "; ".join(kept) if kept else None
