"""The JSON Schema files vendors read are what the models say, and they accept what the models accept."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from pydantic import ValidationError

from schemas import jsonschema


def test_the_committed_schema_files_match_the_models():
    for model in jsonschema.EXPORTED:
        path = jsonschema.FOLDER / f"{model.__name__}.schema.json"
        assert path.exists(), f"run `cityops schemas export` ({path} is missing)"
        assert json.loads(path.read_text(encoding="utf-8")) == jsonschema.schema_of(model), (
            f"{path.name} is stale: run `cityops schemas export`")


def test_a_validator_in_another_language_accepts_and_refuses_what_the_model_does():
    # jsonschema_rs: a Rust JSON Schema validator, standing in for a vendor's own stack.
    validator = jsonschema_rs.validator_for(jsonschema.schema_of(jsonschema.HotlineTicket))
    ticket = {"ticket_no": "GD-1", "received_at": "2026-12-01T09:30:00+08:00", "text": "路灯坏了",
              "caller_phone": "13812345678"}
    assert validator.is_valid(ticket)
    jsonschema.HotlineTicket.model_validate(ticket)
    for bad in ({k: v for k, v in ticket.items() if k != "text"}, ticket | {"caller_phone": "555"},
                ticket | {"priority": "high"}, ticket | {"ticket_no": "has space"}):
        assert not validator.is_valid(bad)
        with pytest.raises(ValidationError):
            jsonschema.HotlineTicket.model_validate(bad)
