"""Score schemes: how a city weighs the SLA figures into one department or street score (考核).

A scheme is a weighted sum of SLA rates, each over all of a unit's tasks or over those from one
intake source (a street's whistles, the hotline's citizens), with the weights summing to 1. The
sample city's schemes are in `pipeline/data/sample-city/scores.yaml`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.events import Source

# The rates of infra.store's SLA board a scheme may weigh (fractions, higher is better but rework).
Figure = Literal["response_rate", "handled_rate", "closure_rate", "on_time_closure_rate", "rework_rate",
                 "resolution_rate", "satisfaction_rate"]
LOWER_IS_BETTER: frozenset[str] = frozenset({"rework_rate"})


class ScoreTerm(BaseModel):
    model_config = ConfigDict(extra="forbid")
    figure: Figure
    weight: Annotated[float, Field(gt=0, le=1)]
    source: Source | None = Field(default=None, description="only the tasks of reports from this source")
    title: str = Field(min_length=1, max_length=100, description="what the term is called in the city's rules")


class ScoreScheme(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=100)
    title_en: str = Field(min_length=1, max_length=100)
    about: str = Field(default="", max_length=2000, description="where the weights come from")
    about_en: str = Field(default="", max_length=2000)
    min_tasks: int = Field(default=5, ge=1, description="fewer tasks than this: scored, not ranked")
    terms: list[ScoreTerm] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _weights_sum_to_one(self) -> ScoreScheme:
        total = sum(t.weight for t in self.terms)
        if abs(total - 1) > 1e-6:
            raise ValueError(f"the terms' weights sum to {total:g}, not 1")
        return self


class ScoreSchemes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: str
    schemes: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$")], ScoreScheme] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_exists(self) -> ScoreSchemes:
        if self.default not in self.schemes:
            raise ValueError(f"default: no scheme is called that (schemes: {', '.join(self.schemes)})")
        return self
