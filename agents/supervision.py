"""A worker's watch over what Faust does not notice by itself: a broker that lost its log, and a
partition whose records wait while its commit does not move (docs/faust-on-tansu.md, "A partition
that stops being read"). Each ends in reading again from the commit, or in a restart in place."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import faust

from agents.faust_patches import describe_partition, read_again_from_commit
from infra.kafka.brokerwatch import BrokerWatch
from infra.settings import Settings

log = logging.getLogger(__name__)


class RestartInPlace(RuntimeError):
    """A state this process cannot leave by itself: `cityops worker` starts it again, same pid."""


class BrokerLogLost(RestartInPlace):
    """The broker lost the log this worker's tables and offsets stand on (`infra/kafka/brokerwatch.py`)."""


class PartitionStalled(RestartInPlace):
    """A partition this worker holds has records waiting and a commit that does not move."""


def supervise_partitions(app: faust.App, settings: Settings, watch: BrokerWatch, tables_ready: Callable[[], bool]) -> None:
    """Every `broker_check_seconds`: check the broker; crash the app (to be started again in place) when
    it lost its log; read a stalled partition again from its commit once, restart when it stays stalled."""
    reread: dict = {}  # partition → the commit it was last read again from (agents.faust_patches)

    @app.timer(settings.broker_check_seconds)
    async def watch_broker() -> None:
        state = await asyncio.to_thread(watch.check)
        if state.lost:
            # The tables hold state their changelogs no longer have, and the offsets point past the
            # new log's end: going on would lose or mis-route work silently. Stop; `cityops worker`
            # starts again on the broker's new log (tables rebuilt from it, topics recreated).
            await app.crash(BrokerLogLost("the broker lost its log: " + "; ".join(state.lost)))
            return
        held = {(tp.topic, tp.partition) for tp in app.consumer.assignment()}

        def stalled_here(seconds: float) -> list:
            """(partition, commit) of the partitions this worker holds, stalled `seconds` (0: never)."""
            if not seconds or not tables_ready():
                return []
            return [(tp, commit) for tp, commit in watch.stalled(seconds) if (tp.topic, tp.partition) in held]

        for tp, commit in stalled_here(settings.stall_reread_seconds):
            if reread.get(tp) != commit:
                # Once per commit: records Faust fetched and never handed to a stage come again; still
                # stalled later: restart below.
                reread[tp] = commit
                log.warning("records wait and the commit has not moved for %.0f s on %s[%d] at %d: reading it "
                            "again from there (%s)", settings.stall_reread_seconds, tp.topic, tp.partition,
                            commit, describe_partition(app.consumer, tp))
                await read_again_from_commit(app.consumer, tp)
        if stalled := stalled_here(settings.stall_restart_seconds):
            # A new process reads them again from their commits; the ids make the re-read harmless.
            where = ", ".join(f"{tp.topic}[{tp.partition}] at {commit}" for tp, commit in stalled)
            log.error("records wait and the commit has not moved for %.0f s on %s: starting the worker again",
                      settings.stall_restart_seconds, where)
            for tp, _ in stalled:
                log.error("stalled %s[%d]: %s", tp.topic, tp.partition, describe_partition(app.consumer, tp))
            await app.crash(PartitionStalled("stalled: " + where))
