"""Shared fixtures. Integration fixtures start real components (Tansu broker, chDB) and stop them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from infra.settings import Settings

SHARED_DATA = Settings().shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder beside the checkout; tests that need it skip, saying so, when it is absent."""
    if not (SHARED_DATA / "zh-gov-messages").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (it sits beside the checkout as ../shared/data)")
    return SHARED_DATA


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix per test, so tests never see each other's data on a shared broker."""
    return f"t{uuid.uuid4().hex[:10]}."
