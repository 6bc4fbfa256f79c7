"""JSON Schema (2020-12) for the messages other systems write, generated from the models, for
vendors who don't use Python: `cityops schemas export DIR`; the copies in `schemas/json/` are
checked against the models by the tests, so they never drift."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.events import OperatorDecision, TaskEvent
from schemas.intake import GridReport, HotlineTicket, SensorReading, Whistle

# What arrives from outside: the intake topics, and the events units and operators may write.
EXPORTED: tuple[type[BaseModel], ...] = (HotlineTicket, GridReport, SensorReading, Whistle, TaskEvent,
                                         OperatorDecision)
FOLDER = Path(__file__).with_name("json")


def schema_of(model: type[BaseModel]) -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"{model.__name__}.schema.json",
            **model.model_json_schema(mode="validation")}


def export(folder: Path = FOLDER) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for model in EXPORTED:
        path = folder / f"{model.__name__}.schema.json"
        path.write_text(json.dumps(schema_of(model), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
