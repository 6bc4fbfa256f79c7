"""Field types every message shares: codes, phones, text without control characters, and instants
and dates within the years a city's records can hold.

A value outside these is refused where it comes in (the api's 422, the intake stage's dead letter),
never carried on to fail later: a park date of 9999-12-31 once passed every stage and then stopped
the ClickHouse sink, whose `Date` ends in 2149.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

# The window of every instant and date in a message: older than any record a city keeps (history
# replays go back years), and well inside what ClickHouse's Date (1970–2149) and DateTime64 hold.
EARLIEST = dt.date(1990, 1, 1)
LATEST = dt.date(2099, 12, 31)

# C0 and C1 control characters, DEL, and the bidirectional overrides that make text display other
# than it reads (U+202A–U+202E, U+2066–U+2069).
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# In free text a line break or tab is the citizen's layout: the rest is refused as above.
_CONTROL_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _not_a_number(example: str):
    """JSON's numbers would be read as Unix times: a sender who means a date or a time writes one."""

    def refuse(value: object) -> object:
        if isinstance(value, int | float):
            raise ValueError(f"an ISO 8601 string ({example}), not a number")
        return value

    return BeforeValidator(refuse)


def _instant_within(value: dt.datetime) -> dt.datetime:
    if not EARLIEST <= value.astimezone(dt.timezone.utc).date() <= LATEST:
        raise ValueError(f"outside {EARLIEST.isoformat()} – {LATEST.isoformat()}")
    return value




def _day_within(value: dt.date) -> dt.date:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"outside {EARLIEST.isoformat()} – {LATEST.isoformat()}")
    return value


def _refusing(characters: re.Pattern, message: str) -> AfterValidator:
    def check(value: str) -> str:
        if characters.search(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


Instant = Annotated[AwareDatetime, _not_a_number("2026-12-01T09:30:00+08:00"), AfterValidator(_instant_within)]
Day = Annotated[dt.date, _not_a_number("2026-12-31"), AfterValidator(_day_within)]
# A title, an address, a name, a reason picked from a list: one line of printable text.
OneLine = Annotated[str, _refusing(_CONTROL_ONE_LINE, "control characters (line breaks included) are not allowed here")]
# A report's text, a note, a result: paragraphs allowed, nothing that rings, erases or hides.
FreeText = Annotated[str, _refusing(_CONTROL_FREE_TEXT, "control characters are not allowed (line breaks and tabs are)")]
NonEmpty = Annotated[FreeText, Field(min_length=1, max_length=20_000)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-.]+$")]
# Mainland mobile (1[3-9]x, 11 digits) or a landline with area code; no spaces.
Phone = Annotated[str, Field(pattern=r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")]
# A photo's address as a web client can fetch it (the api stores the link, never the picture).
PhotoUrl = Annotated[str, Field(max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")]
