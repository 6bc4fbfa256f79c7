"""What a person at a terminal sees of cityops: the SLA board as a table, and Ctrl-C."""

from __future__ import annotations

import signal
import threading

from rich.table import Table

from pipeline.rates import SLA_RATES


def sla_board(board: dict, columns: int) -> Table:
    """The worker's `/sla/` answer as a table: figures down, the total and the first `columns` keys across."""
    shown = [board["total"] | {"key": "all"}, *board["rows"][:columns]]
    table = Table(title=f"SLA board by {board.get('by', 'unit')} (ClickHouse, working time)")
    table.add_column("figure")
    for row in shown:
        table.add_column(row["key"] or "?", justify="right")

    def pct(value) -> str:
        return "–" if value is None else f"{100 * value:.0f}%"

    for r in SLA_RATES:
        table.add_row(r.label, *(pct(row[r.name]) for row in shown))
    for key, label in (("finish_hours_p50", "finish p50, working hours"), ("finish_hours_p90", "finish p90, working hours")):
        table.add_row(label, *("–" if row[key] is None else f"{row[key]:.1f}" for row in shown))
    for key, label in (("tasks", "tasks"), ("supervised", "督办 supervised"), ("escalated", "escalated"),
                       ("overdue_open", "open and overdue"), ("parked", "挂账 parked")):
        table.add_row(label, *(str(row[key]) for row in shown))
    return table


def wait_for_stop_signal() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
