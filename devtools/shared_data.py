"""Reading the real data in ../shared/data (docs/data.md). Every reader returns nothing when
the folder is absent, so the demo and the commands that merely use the data still run without it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path


def message_rows(path: Path) -> Iterator[dict]:
    """The rows of a zh-gov-messages JSONL file; none when the file is absent."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def load_message_texts(path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """(title, text) pairs from a zh-gov-messages JSONL file; [] when the file is absent."""
    texts = []
    for row in message_rows(path):
        if row.get("text"):
            texts.append((row.get("title", "")[:500], row["text"]))
        if limit and len(texts) >= limit:
            break
    return texts


def load_reply_days(path: Path) -> list[float]:
    """Days from message to official reply in `replied.jsonl` ([] when the file is absent)."""
    days = []
    for row in message_rows(path):
        delay = dt.datetime.fromisoformat(row["reply_time"]) - dt.datetime.fromisoformat(row["time"])
        if delay.total_seconds() > 0:
            days.append(delay.total_seconds() / 86400)
    return days
