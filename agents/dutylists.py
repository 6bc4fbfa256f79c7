"""The duty lists in force on this worker: every published version, followed for ever.

    dutylists (compacted, one partition) ──► follower (every worker, from the start) ──► DutyBooks
                                                  └──► deadletters (a version with problems)

Every worker reads every published version before it routes anything (`ready`), then follows the
topic: a new version comes into force without a restart. An incident is stamped with the version in
force when it comes in (`current`) and routed by that version (`book_for`).
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import ValidationError

from agents.following import follow_from_start
from agents.models import ModelsInForce
from agents.wiring import Wiring
from infra import metrics
from pipeline.classify import Classifier
from pipeline.dutylists import DutyBook, DutyBooks
from schemas import DutyListVersion, Incident, describe_validation_error

log = logging.getLogger(__name__)


class DutyLists:
    def __init__(self, wiring: Wiring, bootstrap: DutyBook, models: ModelsInForce):
        self.wiring = wiring
        self.books = DutyBooks(bootstrap)
        self.models = models  # the text model in force: each swap gives every list a new classifier
        self.ready = asyncio.Event()  # set once the published versions (and the model in force) have been read
        self._classifiers: dict[tuple[str, str | None], Classifier] = {}

        @wiring.app.task
        async def follow_dutylists() -> None:
            try:
                await self._follow()
            except Exception as exc:  # without duty lists nothing can be routed: stop loudly
                log.exception("following %s failed", wiring.names.dutylists)
                await wiring.app.crash(exc)

    @property
    def current(self) -> DutyBook:
        return self.books.current

    def book_for(self, incident: Incident) -> DutyBook:
        book = self.books.get(incident.dutylist_version)
        if book is None:  # stamped by a worker that has seen a version this one has not (yet)
            log.warning("duty list %s unknown here; routing by %s", incident.dutylist_version, self.current.version)
            book = self.current
        return book

    def classifier_for(self, book: DutyBook) -> Classifier:
        """The classifier of `book` with the model in force: one model for a whole batch, never a mix."""
        model = self.models.current
        key = (book.version, model.version if model else None)
        if key not in self._classifiers:
            self._classifiers = {k: c for k, c in self._classifiers.items() if k[1] == key[1]}  # an old model's go
            self._classifiers[key] = Classifier(book, model)
        return self._classifiers[key]

    async def _follow(self) -> None:
        async def caught_up() -> None:
            await self.models.ready.wait()
            # The classifier of the list in force is built before the first report is routed (about 2 s:
            # its keyword and word automata), not by the first report.
            await asyncio.to_thread(self.classifier_for, self.current)
            log.info("duty list in force: %s (known: %s)", self.current.version, ", ".join(self.books.versions))
            self.ready.set()

        async def apply(record) -> None:
            self._apply(record)
            if self.ready.is_set():  # a list published meanwhile: its classifier too, off the loop
                await asyncio.to_thread(self.classifier_for, self.current)

        await follow_from_start(self.wiring, self.wiring.names.dutylists, apply, caught_up)

    def _apply(self, record) -> None:
        try:
            publication = DutyListVersion.model_validate_json(record.value)
        except ValidationError as exc:
            reason = describe_validation_error(exc)
        else:
            problems = self.books.publish(publication.yaml)
            if not problems:
                log.info("duty list %s published %s is now in force", publication.version, publication.published_at)
                metrics.DUTYLIST_PUBLICATIONS.labels("applied").inc()
                return
            reason = f"duty list {publication.version} refused: " + "; ".join(p.describe() for p in problems[:10])
        metrics.DUTYLIST_PUBLICATIONS.labels("refused").inc()
        self.wiring.dead_letter(record.topic, record.partition, record.offset, record.value, "dutylist", reason)
