"""The duty list (职责清单) and the city registry it refers to.

Two files describe a city:
- the **registry**: units (departments, districts, streets/townships, communities, with parent
  links and the names addresses use for them) and grids (3-level grid codes with polygons);
- the **duty list**: numbered items naming who handles what, on what legal basis, in what time,
  plus local lists (一乡一单) by which a district or street adds or overrides city items.

The models check the shape of each file; cross-references (unknown unit, duplicate number,
cycles in `extends`) are checked by `pipeline.dutylists.problems`, which reports each with its path
so `cityops dutylist check` can name the line.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.intake import SensorKind

Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")]
# A unit code, or TERRITORIAL_STREET in an item's cooperating units.
UnitRef = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^(@street|[A-Za-z0-9_\-.]+)$")]
UnitKind = Literal["centre", "department", "district", "street", "community"]
# In an item's `cooperating_units`, the street where the incident happened (属地街道).
TERRITORIAL_STREET = "@street"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unit(_Strict):
    code: Code
    name: str = Field(min_length=1)
    kind: UnitKind
    parent: Code | None = Field(default=None, description="district of a street, street of a community")
    aliases: list[str] = Field(default_factory=list, description="other names addresses use (estates, old names)")
    supervisor: Code | None = Field(default=None, description="unit that supervises (督办) this one; default its parent")


class Grid(_Strict):
    """A grid cell (网格): unified code, its community, and its boundary (WGS-84 lon/lat ring)."""

    code: Annotated[str, Field(pattern=r"^\d{15}$")]
    community: Code
    polygon: list[tuple[float, float]] = Field(min_length=4)


class CityRegistry(_Strict):
    city: str
    version: str
    units: list[Unit] = Field(min_length=1)
    grids: list[Grid] = Field(default_factory=list)


TopClass = Literal["城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生",
                   "民政", "政法", "农村农业", "国土资源", "经济管理", "科技与信息产业", "党务政务", "纪检监察"]


class SensorRule(_Strict):
    """Which sensor readings raise an item: a kind, and the value from which it does.

    One kind may raise several items at different values (road ponding from 15 cm, a flood-control
    emergency from 50 cm): the item whose `at_least` is the highest the reading reaches wins."""

    kind: SensorKind
    at_least: float | None = Field(default=None, description="the reading must reach this value; "
                                   "None: every reading of the kind")
    unit: str | None = Field(default=None, min_length=1, max_length=16,
                             description="the unit of `at_least`, as the sensors report it (a reading in "
                             "another unit is not compared: it goes to the operator)")

    @model_validator(mode="after")
    def _value_has_unit(self) -> SensorRule:
        if (self.at_least is None) != (self.unit is None):
            raise ValueError("at_least and unit go together")
        return self


class DutyItem(_Strict):
    """One numbered item of the list: what, who (主责/配合), on what basis, within what time."""

    number: str = Field(min_length=1, description="编号, unique within the list")
    title: str = Field(min_length=1)
    category: list[str] = Field(min_length=1, max_length=3,
                                description="government taxonomy path, top-level class first")
    keywords: list[str] = Field(min_length=1)
    examples: list[str] = Field(default_factory=list, description="typical phrasings from real reports")
    grid_classes: list[str] = Field(default_factory=list,
                                    description="city-management classes (GB/T 30428 部件/事件) grid workers pick")
    sensor_rules: list[SensorRule] = Field(default_factory=list, description="sensor readings that raise this item")
    scope: Literal["department", "territorial"] = Field(
        default="department", description="territorial (属地): the street where it happens is the primary unit")
    primary_unit: Code = Field(description="主责 unit; for territorial items, the department that guides the streets")
    cooperating_units: list[UnitRef] = Field(default_factory=list, description=f"配合 units; {TERRITORIAL_STREET} = 属地街道")
    legal_basis: str = Field(min_length=1)
    accept_within_hours: float = Field(gt=0, default=2, description="接单 limit, working hours")
    finish_within_days: float = Field(gt=0, default=5, description="办结 limit, working days")
    merge_within_m: float | None = Field(default=None, gt=0, description="reports this close merge into one "
                                         "case; default: the city's setting (CITYOPS_MERGE_WITHIN_M)")
    merge_within_hours: float | None = Field(default=None, gt=0, description="…and this recent; default: "
                                             "CITYOPS_MERGE_WITHIN_HOURS")
    effective_from: dt.date | None = None
    fallback: bool = Field(default=False, description="the class's general item (其他事项): a report the model "
                           "places confidently in this class that no other item fits goes here; one per class")

    @model_validator(mode="after")
    def _top_class_known(self) -> DutyItem:
        if self.category[0] not in TopClass.__args__:
            raise ValueError(f"category: top-level class {self.category[0]!r} is not in the government taxonomy")
        return self

    @property
    def top_class(self) -> str:
        return self.category[0]


class ItemOverride(_Strict):
    """A local list's entry: changes to a city item with the same number, or a new item (then complete)."""

    number: str = Field(min_length=1)
    fallback: bool | None = None
    title: str | None = None
    category: list[str] | None = None
    keywords: list[str] | None = None
    examples: list[str] | None = None
    grid_classes: list[str] | None = None
    sensor_rules: list[SensorRule] | None = None
    scope: Literal["department", "territorial"] | None = None
    primary_unit: Code | None = None
    cooperating_units: list[UnitRef] | None = None
    legal_basis: str | None = None
    accept_within_hours: float | None = Field(default=None, gt=0)
    finish_within_days: float | None = Field(default=None, gt=0)
    merge_within_m: float | None = Field(default=None, gt=0)
    merge_within_hours: float | None = Field(default=None, gt=0)
    effective_from: dt.date | None = None

    def changes(self) -> dict:
        return self.model_dump(exclude_none=True, exclude={"number"})


class LocalList(_Strict):
    """一乡一单: a district's or street's own list, applied on top of the list it extends."""

    jurisdiction: Code = Field(description="the district or street this list is for")
    extends: Code | None = Field(default=None, description="another local list's jurisdiction; default: the "
                                 "list of the parent district if it has one, else the city list")
    items: list[ItemOverride] = Field(default_factory=list)
    removes: list[str] = Field(default_factory=list, description="city item numbers that do not apply here")


class WhistlePolicy(_Strict):
    """街乡吹哨、部门报到: summoned departments answer within the whistle's own limits."""

    number: str = "CS-0"
    title: str = "街乡吹哨 部门报到"
    legal_basis: str = Field(min_length=1)
    accept_within_hours: float = Field(gt=0, default=0.5)
    finish_within_days: float = Field(gt=0, default=3)


class DutyList(_Strict):
    version: str = Field(min_length=1)
    jurisdiction: str = Field(min_length=1, description="the city")
    effective_from: dt.date
    items: list[DutyItem] = Field(min_length=1)
    local_lists: list[LocalList] = Field(default_factory=list)
    whistle: WhistlePolicy
