"""The SLA board's rates, each defined once: the store computes them, the api serves them, the
terminal and the screen label them from here. A rate is a fraction, None when nothing divides it.

They are read from the counts the store keeps per group of tasks (a task is one unit's share of an
incident; `kept` = tasks not returned). `overdue_open` is the one overdue count: open, its finish
clock running (pipeline.sla.FINISH_RUNNING), past its finish deadline at the instant asked about.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class Rate:
    name: str
    label: str  # 中文 name, then what it counts, as the board shows it
    meaning: str
    of: Callable[[Mapping[str, int]], float | None]


def _kept(c: Mapping[str, int]) -> int:
    return c["tasks"] - c["returned"]


SLA_RATES: tuple[Rate, ...] = (
    Rate("response_rate", "响应率 accepted in time", "accepted within the accept limit, of the tasks due to be accepted",
         lambda c: rate(c["accepted_in_time"], c["accept_due"])),
    Rate("handled_rate", "处置率 handled", "completed, of the tasks kept", lambda c: rate(c["handled"], _kept(c))),
    Rate("closure_rate", "结案率 closed", "closed, of the tasks kept", lambda c: rate(c["closed"], _kept(c))),
    # An overdue open task is late already: counting closed tasks only read 100% while most were overdue.
    Rate("on_time_closure_rate", "按期结案率 closed on time",
         "closed by the finish deadline, of those closed and those still open past it",
         lambda c: rate(c["closed_on_time"], c["closed"] + c["overdue_open"])),
    Rate("rework_rate", "返工率 rework", "failed verification at least once, of those completed",
         lambda c: rate(c["reworked"], max(c["handled"], c["reworked"]))),
    Rate("resolution_rate", "解决率 resolved (reporter)", "scored 基本满意 or 满意, of those the reporter scored",
         lambda c: rate(c["resolved"], c["evaluated"])),
    Rate("satisfaction_rate", "满意率 satisfied (reporter)", "scored 满意, of those the reporter scored",
         lambda c: rate(c["satisfied"], c["evaluated"])),
)


def sla_rates(counts: Mapping[str, int]) -> dict[str, float | None]:
    return {r.name: r.of(counts) for r in SLA_RATES}
