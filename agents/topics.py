"""Topic names, in one place for the worker, the feeders and the tests (no Faust import here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicNames:
    prefix: str = ""

    def intake(self, source: str) -> str:
        return f"{self.prefix}intake.{source}"

    @property
    def intakes(self) -> dict[str, str]:
        return {source: self.intake(source) for source in ("hotline", "grid", "sensor", "whistle")}

    @property
    def incidents(self) -> str:
        return f"{self.prefix}incidents"

    @property
    def dispatches(self) -> str:
        return f"{self.prefix}dispatches"

    @property
    def task_events(self) -> str:
        return f"{self.prefix}task-events"

    @property
    def manual(self) -> str:
        return f"{self.prefix}manual"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}deadletters"

    def all(self) -> list[str]:
        return [*self.intakes.values(), self.incidents, self.dispatches, self.task_events, self.manual, self.dead_letters]
