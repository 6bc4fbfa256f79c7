from __future__ import annotations

import pytest

from pipeline.dutylists import DutyBook, load_dutybook
from pipeline.locate import Locator


@pytest.fixture(scope="session")
def sample_book() -> DutyBook:
    return load_dutybook()


@pytest.fixture(scope="session")
def sample_locator(sample_book: DutyBook) -> Locator:
    return Locator(sample_book.registry)
