"""The text model in force, for the screen and the operations centre (no citizens' data: no key).

    GET /model/    the model in force (the last published on the `models` topic, else the model
                   directory's CURRENT), when it was trained and on what, the publications, each
                   model's right-unit rate in production (its first dispatches not returned as 职能不符),
                   and per day the share of first routings sent automatically (the queue's trend)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable

from fastapi import APIRouter, Depends

from infra.api.auth import public_client
from infra.settings import Settings
from infra.store import Store
from pipeline.textmodel import TopClassModel
from schemas import ModelVersion
from schemas.topics import TopicNames

# How often the publications are read again from the topic (a handful of small records).
PUBLICATIONS_MAX_AGE = 10.0
TREND_DAYS = 30
# What a model's meta says of its training, as /model/ shows it.
TRAINING_FACTS = ("trained_at", "labelled_rows", "unit_rows", "unit_rows_by_source", "rulings", "rulings_cut_off")


def model_router(settings: Settings, store: Store, now: Callable[[], dt.datetime]) -> APIRouter:
    router = APIRouter(tags=["figures"])
    publications: dict = {"read_at": 0.0, "rows": []}

    def published() -> list[dict]:
        """The publications, newest last (none without a broker: the api then knows only CURRENT)."""
        if not settings.kafka_bootstrap_servers:
            return []
        if time.monotonic() - publications["read_at"] > PUBLICATIONS_MAX_AGE:
            from infra.kafka.reader import read_all

            values = read_all(settings, TopicNames(settings.topic_prefix).models, timeout=10)
            publications["rows"] = [ModelVersion.model_validate_json(v).model_dump(mode="json") for v in values]
            publications["read_at"] = time.monotonic()
        return publications["rows"]

    def training(version: str | None) -> dict:
        found = (TopClassModel.meta_of(settings.model_dir / f"topclass-{version}") if version else None) or {}
        return {k: found[k] for k in TRAINING_FACTS if k in found}

    @router.get("/model/", dependencies=[Depends(public_client)])
    async def model() -> dict:
        """The model in force, its training, its publications, and its right-unit rate in production."""
        rows = await asyncio.to_thread(published)
        current = settings.model_dir / "CURRENT"
        at_start = current.read_text(encoding="utf-8").strip().removeprefix("topclass-") if current.exists() else None
        in_force = rows[-1] if rows else {"version": at_start, "published_at": None, "published_by": "",
                                          "note": "the model directory's CURRENT (none published)"}
        figures = await asyncio.to_thread(store.model_figures, now() - dt.timedelta(days=TREND_DAYS))
        return {"in_force": in_force | {"training": training(in_force["version"])}, "published": rows[-10:],
                **figures}

    return router
