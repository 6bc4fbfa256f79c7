"""The text model in force on this worker: the one last published on the `models` topic.

    models (compacted, one partition) ──► follower (every worker, from the start) ──► the model in force
                                               └──► deadletters (a version this worker cannot load)

`cityops model publish` names a folder of the model directory every worker shares; `cityops model
rollback` names the one before. A worker that starts reads the topic to its end and loads only the
last version named, whole, before it routes anything; one that runs loads a newly named version off
the event loop and swaps it in at once: every classification uses one model, and names it. Until a
version is published, the model `CURRENT` names at start is in force.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from pydantic import ValidationError

from agents.following import follow_from_start
from agents.wiring import Wiring
from pipeline.textmodel import TopClassModel
from schemas import ModelVersion, describe_validation_error

log = logging.getLogger(__name__)
STAGE = "models"


class ModelsInForce:
    def __init__(self, wiring: Wiring, model: TopClassModel | None):
        self.wiring = wiring
        self.current = model
        self.ready = asyncio.Event()  # set once the published versions have been read and the last loaded
        self._last_published = None  # (record, ModelVersion) read before caught up: loaded then, once

        @wiring.app.task
        async def follow_models() -> None:
            try:
                await follow_from_start(wiring, wiring.names.models, self._apply, self._caught_up)
            except Exception as exc:  # without knowing the model in force, routing could use a withdrawn one
                log.exception("following %s failed", wiring.names.models)
                await wiring.app.crash(exc)

    async def _apply(self, record) -> None:
        try:
            published = ModelVersion.model_validate_json(record.value)
        except ValidationError as exc:
            self._refuse(record, describe_validation_error(exc))
            return
        if self.ready.is_set():
            await self._put_in_force(record, published)
        else:
            self._last_published = (record, published)

    async def _caught_up(self) -> None:
        if self._last_published is not None:
            await self._put_in_force(*self._last_published)
            self._last_published = None
        log.info("text model in force: %s", self.current.version if self.current else "none (keywords alone)")
        self.ready.set()

    async def _put_in_force(self, record, published: ModelVersion) -> None:
        folder = Path(self.wiring.settings.model_dir) / published.folder
        try:
            model = await asyncio.to_thread(TopClassModel.load_folder, folder)
        except (OSError, ValueError) as exc:
            self._refuse(record, f"model {published.version}: cannot load {published.folder} from the model "
                                 f"directory ({type(exc).__name__}); the model in force stays")
            return
        if model is None or model.version != published.version:
            self._refuse(record, f"model {published.version}: {published.folder} holds another version or kind; "
                                 "the model in force stays")
            return
        self.current = model
        log.info("text model %s in force (published by %s at %s: %s)", model.version, published.published_by or "?",
                 published.published_at.isoformat(), published.note or "no note")

    def _refuse(self, record, reason: str) -> None:
        log.warning("%s", reason)
        self.wiring.dead_letter(record.topic, record.partition, record.offset, record.value, STAGE, reason)
