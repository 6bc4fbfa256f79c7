"""The duty list (职责清单) file: numbered items naming who handles what, and on what legal basis."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Unit(_Strict):
    code: str = Field(pattern=r"^[A-Za-z0-9_\-.]+$")
    name: str
    kind: Literal["department", "district", "street", "community", "centre"]


class DutyItem(_Strict):
    number: str = Field(description="编号, unique within the list")
    title: str
    top_class: str = Field(description="top-level class of the government taxonomy")
    keywords: list[str] = Field(min_length=1)
    scope: Literal["department", "territorial"] = "department"
    primary_unit: str = Field(description="主责 unit code; for territorial items the street is resolved at dispatch")
    cooperating_units: list[str] = Field(default_factory=list, description="配合 unit codes")
    sensor_kinds: list[str] = Field(default_factory=list, description="sensor kinds that raise this item")
    legal_basis: str = Field(min_length=1)
    accept_within_hours: float = Field(gt=0, default=2)
    finish_within_days: float = Field(gt=0, default=5)


class DutyList(_Strict):
    version: str
    jurisdiction: str
    effective_from: dt.date
    units: list[Unit]
    items: list[DutyItem] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self) -> DutyList:
        codes = {u.code for u in self.units}
        numbers: set[str] = set()
        for item in self.items:
            if item.number in numbers:
                raise ValueError(f"item {item.number}: duplicate number")
            numbers.add(item.number)
            for unit in [item.primary_unit, *item.cooperating_units]:
                if unit not in codes:
                    raise ValueError(f"item {item.number}: unknown unit {unit!r}")
        return self

    def unit(self, code: str) -> Unit:
        return next(u for u in self.units if u.code == code)
