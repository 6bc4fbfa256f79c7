"""A replay mapping: which columns of a historical work-order file (CSV or JSON lines) hold what
(`cityops replay --mapping MAPPING.yaml FILE`). The sample mappings are in pipeline/data/replay/."""

from __future__ import annotations

import zoneinfo
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Column = Annotated[str, Field(min_length=1, max_length=200)]
# The fields that say how to read the file; every other field names columns.
READING_FIELDS = frozenset({"name", "format", "timezone", "time_format", "id_prefix"})


class ReplayMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$",
                      description="the mapping's name, kept with every replayed order")
    format: Literal["csv", "jsonl"]
    timezone: str = Field(description="IANA zone of times written without an offset, e.g. America/New_York")
    time_format: str | None = Field(default=None, description="strptime format of the times; None: ISO 8601")
    id: Column = Field(description="the order's own number: with `id_prefix` the ticket number, so a second "
                       "replay of the file changes nothing")
    id_prefix: str = Field(default="", max_length=16, pattern=r"^[A-Za-z0-9_\-.]*$")
    created: Column = Field(description="when the order came in: its dispatch time")
    due: Column | None = Field(default=None, description="its deadline; empty or absent: the duty list's limits")
    accepted: Column | None = Field(default=None, description="when the unit accepted it; absent: at dispatch")
    closed: Column | None = Field(default=None, description="when it was closed; empty: still open")
    unit: Column | None = Field(default=None, description="the unit it went to; absent: the duty list routes it")
    category: Column | None = Field(default=None, description="the record's own category (its item when the "
                                    "record names its unit)")
    title: list[Column] = Field(default_factory=list, description="columns joined into the title")
    text: list[Column] = Field(min_length=1, description="columns joined into the text (empty ones skipped)")
    address: Column | None = None
    district: Column | None = None
    street: Column | None = None
    latitude: Column | None = None
    longitude: Column | None = None

    def columns(self) -> list[str]:
        """Every column the mapping reads."""
        named = [value for field, value in self if field not in READING_FIELDS and value is not None]
        return list(dict.fromkeys(c for value in named for c in ([value] if isinstance(value, str) else value)))

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone (e.g. Asia/Shanghai, America/New_York)") from None
        return zone
