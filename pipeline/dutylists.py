"""Reading duty-list files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from schemas import DutyList


def load_dutylist(path: Path | None = None) -> DutyList:
    """The list at `path`, or the sample city's list shipped with cityops."""
    text = path.read_text(encoding="utf-8") if path else resources.files("pipeline").joinpath("data/sample-dutylist.yaml").read_text(encoding="utf-8")
    return DutyList.model_validate(yaml.safe_load(text))
