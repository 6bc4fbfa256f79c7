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

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from agents.wiring import Wiring
from infra import metrics
from infra.kafka.broker import true_end_offsets
from infra.kafka.security import aiokafka_security
from pipeline.classify import Classifier
from pipeline.dutylists import DutyBook, DutyBooks
from pipeline.textmodel import TopClassModel
from schemas import DutyListVersion, Incident, describe_validation_error

log = logging.getLogger(__name__)


class DutyLists:
    def __init__(self, wiring: Wiring, bootstrap: DutyBook, model: TopClassModel | None):
        self.wiring = wiring
        self.books = DutyBooks(bootstrap)
        self.model = model
        self.ready = asyncio.Event()  # set once the published versions have been read
        self._classifiers: dict[str, Classifier] = {}

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
        if book.version not in self._classifiers:
            self._classifiers[book.version] = Classifier(book, self.model)
        return self._classifiers[book.version]

    async def _follow(self) -> None:
        servers, topic_name = self.wiring.settings.kafka_bootstrap_servers, self.wiring.names.dutylists
        tp = TopicPartition(topic_name, 0)
        consumer = AIOKafkaConsumer(bootstrap_servers=servers, **aiokafka_security(self.wiring.settings),
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            reported = await consumer.end_offsets([tp])
            # The embedded broker under-reports the end; read up to the true one before routing anything.
            end = (await asyncio.to_thread(true_end_offsets, servers, {tp: reported[tp]}))[tp]
            log.info("reading %d published duty-list record(s) from %s", end, topic_name)
            while True:
                if not self.ready.is_set() and await consumer.position(tp) >= end:
                    # The classifier of the list in force is built before the first report is routed
                    # (about 2 s: its keyword and word automata), not by the first report.
                    await asyncio.to_thread(self.classifier_for, self.current)
                    log.info("duty list in force: %s (known: %s)", self.current.version, ", ".join(self.books.versions))
                    self.ready.set()
                for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                    for record in records:
                        self._apply(record)
                    if self.ready.is_set():  # a list published meanwhile: its classifier too, off the loop
                        await asyncio.to_thread(self.classifier_for, self.current)
        finally:
            await consumer.stop()

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
