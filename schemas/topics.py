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
    def task_events(self) -> str:
        return f"{self.prefix}task-events"

    @property
    def task_updates(self) -> str:
        """The task stage's output: each applied task event with the task after it."""
        return f"{self.prefix}task-updates"

    @property
    def webhook_attempts(self) -> str:
        return f"{self.prefix}webhook-attempts"

    @property
    def manual(self) -> str:
        return f"{self.prefix}manual"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}deadletters"

    @property
    def classified(self) -> str:
        """Routable incidents keyed by reporter, so a caller's repeated reports meet."""
        return f"{self.prefix}classified"

    @property
    def case_reports(self) -> str:
        """Routable incidents keyed by case (item and street), so reports of one problem meet."""
        return f"{self.prefix}case-reports"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def manual_decisions(self) -> str:
        return f"{self.prefix}manual-decisions"

    @property
    def dutylists(self) -> str:
        """Published duty-list versions, keyed by version: compacted, one partition (one order)."""
        return f"{self.prefix}dutylists"

    @property
    def models(self) -> str:
        """Published text-model versions (`cityops model publish`): compacted, one partition (one order)."""
        return f"{self.prefix}models"

    @property
    def batched(self) -> frozenset[str]:
        """The topics stages write as batch records (schemas/batches.py): only cityops stages (and the
        sink) read them. `task-events` also takes the api's department events, one per record."""
        return frozenset({self.incidents, self.classified, self.case_reports, self.task_events, self.task_updates,
                          self.manual})

    def all(self) -> list[str]:
        """The partitioned topics (all with the same partition count, as Faust tables need)."""
        return [*self.intakes.values(), self.incidents, self.classified, self.case_reports, self.task_events,
                self.task_updates, self.manual, self.manual_decisions, self.alerts, self.webhook_attempts,
                self.dead_letters]
