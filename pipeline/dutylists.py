"""Reading, checking and resolving duty lists (职责清单) against the city registry.

`problems()` is the one place cross-references are checked; `read_dutylist()` adds the line number
of each problem for `cityops dutylist check`; `load_dutylist()` refuses a list with any problem.
`DutyBook` answers "which item applies here, and who handles it" for a street, after the local
lists (一乡一单) have been applied.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from schemas.dutylist import TERRITORIAL_STREET, CityRegistry, DutyItem, DutyList, LocalList, Unit
from schemas.intake import GridReport, SensorReading, Whistle

Loc = tuple[str | int, ...]
# Dates in duty lists (effective_from) are the city's local dates.
CITY_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
SAMPLE_CITY = "data/sample-city"


class DutyListError(ValueError):
    """A duty list or registry that cannot be used; `problems` lists every reason, with lines when known."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(p.describe() for p in self.problems))


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    line: int | None = None

    def describe(self, file: str = "") -> str:
        if file:
            where = f"{file}:{self.line}: " if self.line else f"{file}: "
        else:
            where = f"line {self.line}: " if self.line else ""
        path = ".".join(str(p) for p in self.loc)
        return f"{where}{path + ': ' if path else ''}{self.message}"


# ---------------------------------------------------------------------------------- registry


def sample_path(name: str) -> Path:
    return Path(str(resources.files("pipeline").joinpath(f"{SAMPLE_CITY}/{name}")))


def grids_file_of(units_file: Path | None) -> Path:
    """The grids' GeoJSON that goes with a registry's units file (beside it; the sample city's by default)."""
    return (units_file or sample_path("units.yaml")).with_name("grids.geojson")


def load_registry(units_file: Path | None = None, grids_file: Path | None = None) -> CityRegistry:
    """The city registry: units from YAML, grids from GeoJSON (the sample city by default)."""
    units_file = units_file or sample_path("units.yaml")
    grids_file = grids_file or grids_file_of(units_file)
    raw = yaml.safe_load(units_file.read_text(encoding="utf-8"))
    grids = []
    if grids_file.exists():
        for feature in json.loads(grids_file.read_text(encoding="utf-8"))["features"]:
            grids.append({"code": feature["properties"]["code"], "community": feature["properties"]["community"],
                          "polygon": feature["geometry"]["coordinates"][0]})
    registry = CityRegistry.model_validate({**raw, "grids": grids})
    found = registry_problems(registry)
    if found:
        raise DutyListError(found)
    return registry


def registry_problems(registry: CityRegistry) -> list[Problem]:
    found: list[Problem] = []
    units: dict[str, Unit] = {}
    for i, unit in enumerate(registry.units):
        if unit.code in units:
            found.append(Problem(("units", i, "code"), f"duplicate unit code {unit.code!r}"))
        units[unit.code] = unit
    expected_parent = {"community": "street", "street": "district"}
    for i, unit in enumerate(registry.units):
        want = expected_parent.get(unit.kind)
        parent = units.get(unit.parent) if unit.parent else None
        if unit.parent and parent is None:
            found.append(Problem(("units", i, "parent"), f"unknown unit {unit.parent!r}"))
        elif want and (parent is None or parent.kind != want):
            found.append(Problem(("units", i, "parent"), f"a {unit.kind} needs a {want} as parent"))
        if unit.supervisor and unit.supervisor not in units:
            found.append(Problem(("units", i, "supervisor"), f"unknown unit {unit.supervisor!r}"))
    seen: set[str] = set()
    for i, grid in enumerate(registry.grids):
        if grid.code in seen:
            found.append(Problem(("grids", i, "code"), f"duplicate grid code {grid.code}"))
        seen.add(grid.code)
        community = units.get(grid.community)
        if community is None or community.kind != "community":
            found.append(Problem(("grids", i, "community"), f"{grid.community!r} is not a community of the registry"))
    return found


# ---------------------------------------------------------------------------------- duty list


def problems(dutylist: DutyList, registry: CityRegistry) -> list[Problem]:
    """Every cross-reference error of a structurally valid list, each with its path in the file."""
    units = {u.code: u for u in registry.units}
    found: list[Problem] = []

    def check_units(loc: Loc, primary: str | None, cooperating: list[str] | None, *, local: bool) -> None:
        if primary is not None:
            unit = units.get(primary)
            if unit is None:
                found.append(Problem((*loc, "primary_unit"), f"unknown unit {primary!r}"))
            elif unit.kind in ("street", "community") and not local:
                found.append(Problem((*loc, "primary_unit"), f"{primary} is a {unit.kind}: a city item names "
                                     "departments; streets take territorial items or are named by local lists"))
        for j, code in enumerate(cooperating or []):
            if code != TERRITORIAL_STREET and code not in units:
                found.append(Problem((*loc, "cooperating_units", j), f"unknown unit {code!r}"))

    numbers: set[str] = set()
    fallback_of: dict[str, str] = {}  # class → its general item
    sensor_owner: dict[tuple[str, float | None], str] = {}
    sensor_unit: dict[str, str] = {}
    for i, item in enumerate(dutylist.items):
        if item.number in numbers:
            found.append(Problem(("items", i, "number"), f"duplicate number {item.number}"))
        if item.fallback and item.top_class in fallback_of:
            found.append(Problem(("items", i, "fallback"), f"{item.top_class} already has a general item "
                                 f"({fallback_of[item.top_class]}): one per class"))
        elif item.fallback:
            fallback_of[item.top_class] = item.number
        numbers.add(item.number)
        check_units(("items", i), item.primary_unit, item.cooperating_units, local=False)
        for j, rule in enumerate(item.sensor_rules):
            unit = sensor_unit.setdefault(rule.kind, rule.unit) if rule.unit else None
            if unit != rule.unit:  # values of one kind are compared with each other: one unit
                found.append(Problem(("items", i, "sensor_rules", j),
                                     f"sensor kind {rule.kind!r} has rules in {unit}; this one is in {rule.unit}"))
            owner = sensor_owner.setdefault((rule.kind, rule.at_least), item.number)
            if owner != item.number:
                value = "any value" if rule.at_least is None else f"{rule.at_least:g} {rule.unit}"
                found.append(Problem(("items", i, "sensor_rules", j),
                                     f"sensor kind {rule.kind!r} at {value} already raises item {owner}"))

    by_jurisdiction: dict[str, int] = {}
    for i, local in enumerate(dutylist.local_lists):
        unit = units.get(local.jurisdiction)
        if unit is None or unit.kind not in ("district", "street"):
            found.append(Problem(("local_lists", i, "jurisdiction"),
                                 f"{local.jurisdiction!r} is not a district or street of the registry"))
        if local.jurisdiction in by_jurisdiction:
            found.append(Problem(("local_lists", i, "jurisdiction"), f"a second list for {local.jurisdiction}"))
        by_jurisdiction[local.jurisdiction] = i
        for j, override in enumerate(local.items):
            loc = ("local_lists", i, "items", j)
            check_units(loc, override.primary_unit, override.cooperating_units, local=True)
            if override.number not in numbers:
                missing = [f for f in ("title", "category", "keywords", "primary_unit", "legal_basis")
                           if getattr(override, f) is None]
                if missing:
                    found.append(Problem(loc, f"new item {override.number} (not in the city list) needs "
                                         + ", ".join(missing)))
        for j, number in enumerate(local.removes):
            if number not in numbers:
                found.append(Problem(("local_lists", i, "removes", j), f"no city item {number} to remove"))

    for i, local in enumerate(dutylist.local_lists):
        if local.extends and local.extends not in by_jurisdiction:
            found.append(Problem(("local_lists", i, "extends"), f"no local list for {local.extends!r} to extend"))
    for i, local in enumerate(dutylist.local_lists):
        chain = [local.jurisdiction]
        nxt = local.extends
        while nxt in by_jurisdiction:
            if nxt in chain:
                found.append(Problem(("local_lists", i, "extends"), "cycle in extends: " + " → ".join([*chain, nxt])))
                break
            chain.append(nxt)
            nxt = dutylist.local_lists[by_jurisdiction[nxt]].extends
    # Effective items must still be complete and valid after the overrides are applied.
    if not found:
        book = DutyBook(dutylist, registry)
        for i, local in enumerate(dutylist.local_lists):
            try:
                book.items_for(local.jurisdiction)
            except ValidationError as exc:
                for err in exc.errors(include_url=False, include_input=False):
                    found.append(Problem(("local_lists", i), f"after overrides: {err['msg']}"))
    return found


def read_dutylist(text: str, registry: CityRegistry) -> tuple[DutyList | None, list[Problem]]:
    """The list a duty-list file holds and all its problems, each with its line (1-based).
    The list is None when the file has any problem."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, [Problem((), f"not YAML: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None)]
    try:
        dutylist = DutyList.model_validate(yaml.safe_load(text))
        found = problems(dutylist, registry)
    except ValidationError as exc:
        dutylist = None
        found = [Problem(tuple(err["loc"]), err["msg"]) for err in exc.errors(include_url=False, include_input=False)]
    return (None if found else dutylist), [Problem(p.loc, p.message, _line_of(root, p.loc)) for p in found]


def check_text(text: str, registry: CityRegistry) -> list[Problem]:
    """All problems of a duty-list file, each with the line it is on."""
    return read_dutylist(text, registry)[1]


def load_dutylist(path: Path | None = None, registry: CityRegistry | None = None) -> DutyList:
    """The list at `path` (the sample city's by default), refused with every problem if it has any."""
    text = (path or sample_path("dutylist.yaml")).read_text(encoding="utf-8")
    dutylist, found = read_dutylist(text, registry or load_registry())
    if found:
        raise DutyListError(found)
    return dutylist


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """The line of the deepest node along `loc` that the file has."""
    node, line = root, (root.start_mark.line + 1 if root else None)
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:  # a missing field: point at the mapping that lacks it
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


# ---------------------------------------------------------------------------------- resolution


class DutyBook:
    """A duty list resolved against the registry: the effective items for any street."""

    def __init__(self, dutylist: DutyList, registry: CityRegistry):
        self.dutylist = dutylist
        self.registry = registry
        self.units: dict[str, Unit] = {u.code: u for u in registry.units}
        self.grid_codes: frozenset[str] = frozenset(g.code for g in registry.grids)
        self._local: dict[str, LocalList] = {ll.jurisdiction: ll for ll in dutylist.local_lists}
        self._effective: dict[str | None, dict[str, DutyItem]] = {None: {i.number: i for i in dutylist.items}}
        self._latest_start: dict[str | None, dt.date | None] = {}  # per list: the last effective_from

    @property
    def version(self) -> str:
        return self.dutylist.version

    def list_for(self, street: str | None) -> str | None:
        """The jurisdiction whose local list applies at `street` (its own, else its district's), or None."""
        unit = self.units.get(street) if street else None
        while unit is not None:
            if unit.code in self._local:
                return unit.code
            unit = self.units.get(unit.parent) if unit.parent else None
        return None

    def items_for(self, street: str | None, on: dt.date | None = None) -> dict[str, DutyItem]:
        """The items in force at `street` (on `on`, when given: items not yet effective are left out)."""
        jurisdiction = self.list_for(street)
        items = self._items_of(jurisdiction)
        if jurisdiction not in self._latest_start:
            self._latest_start[jurisdiction] = max((i.effective_from for i in items.values() if i.effective_from),
                                                   default=None)
        latest = self._latest_start[jurisdiction]
        if on is None or latest is None or latest <= on:
            return items  # the common case, and on the classifier's hot path: no copy
        return {n: i for n, i in items.items() if i.effective_from is None or i.effective_from <= on}

    def item(self, number: str, street: str | None = None) -> DutyItem | None:
        return self.items_for(street).get(number)

    def every_item(self) -> Iterator[DutyItem]:
        """Each item as it stands in the city list and in every local list (repeats included)."""
        for jurisdiction in [None, *self._local]:
            yield from self._items_of(jurisdiction).values()

    def base_of(self, jurisdiction: str) -> str | None:
        """The list a local list applies on top of (another local list, or None for the city list)."""
        return self._local[jurisdiction].extends or self._parent_list(jurisdiction)

    def _items_of(self, jurisdiction: str | None) -> dict[str, DutyItem]:
        if jurisdiction not in self._effective:
            local = self._local[jurisdiction]
            base = self._items_of(self.base_of(jurisdiction))
            items = {n: i for n, i in base.items() if n not in local.removes}
            for override in local.items:
                if override.number in items:
                    merged = items[override.number].model_dump() | override.changes()
                else:
                    merged = override.model_dump(exclude_none=True)
                items[override.number] = DutyItem.model_validate(merged)
            self._effective[jurisdiction] = items
        return self._effective[jurisdiction]

    def _parent_list(self, jurisdiction: str) -> str | None:
        parent = self.units[jurisdiction].parent
        return self.list_for(parent) if parent else None

    def registry_problems(self, message: BaseModel) -> list[tuple[str, str]]:
        """(field, why) for each unit or grid a report names that the registry does not know: a whistle's
        street and the units it summons, a grid code. Never the value: it is whatever a client typed."""
        found = []
        if isinstance(message, Whistle):
            if getattr(self.units.get(message.unit), "kind", None) != "street":
                found.append(("unit", "not a street or township of the city registry"))
            found += [(f"summoned_units.{n}", "not a unit of the city registry")
                      for n, unit in enumerate(message.summoned_units) if unit not in self.units]
        grid = message.grid_code if isinstance(message, GridReport | SensorReading) else None
        if grid is not None and self.grid_codes and grid not in self.grid_codes:
            found.append(("grid_code", "not a grid of the city registry"))
        return found

    def district_of(self, code: str | None) -> str | None:
        unit = self.units.get(code) if code else None
        while unit is not None and unit.kind != "district":
            unit = self.units.get(unit.parent) if unit.parent else None
        return unit.code if unit else None

    def where_handled(self, number: str) -> Iterator[tuple[str | None, DutyItem | None]]:
        """(jurisdiction, effective item) for the city list and each local list that changes the item."""
        yield None, self._items_of(None).get(number)
        for jurisdiction in self._local:
            item = self._items_of(jurisdiction).get(number)
            if item != self._items_of(self.base_of(jurisdiction)).get(number):
                yield jurisdiction, item


def load_dutybook(dutylist_file: Path | None = None, units_file: Path | None = None) -> DutyBook:
    registry = load_registry(units_file)
    return DutyBook(load_dutylist(dutylist_file, registry), registry)



class DutyBooks:
    """Every duty-list version a worker knows, and which one is in force.

    Versions arrive in publication order. The one in force on a day is the last valid one
    published whose `effective_from` has come (a list can be published ahead of its date).
    Older ones stay, so an incident keeps the version it came in under. A publication with
    problems is refused and changes nothing.
    """

    def __init__(self, bootstrap: DutyBook):
        self.registry = bootstrap.registry
        self._books: dict[str, DutyBook] = {bootstrap.version: bootstrap}
        self._published: list[DutyBook] = [bootstrap]

    def publish(self, text: str) -> list[Problem]:
        dutylist, found = read_dutylist(text, self.registry)
        if found:
            return found
        book = DutyBook(dutylist, self.registry)
        self._books[book.version] = book
        self._published.append(book)
        return []

    def in_force(self, on: dt.date) -> DutyBook:
        eligible = [b for b in self._published if b.dutylist.effective_from <= on]
        # Before any list's date, the earliest-dated one: routing by a list beats not routing.
        return eligible[-1] if eligible else min(self._published, key=lambda b: b.dutylist.effective_from)

    @property
    def current(self) -> DutyBook:
        return self.in_force(dt.datetime.now(CITY_TZ).date())

    def get(self, version: str | None) -> DutyBook | None:
        return self._books.get(version) if version else None

    @property
    def versions(self) -> list[str]:
        return list(self._books)
