"""`cityops worker`: the stream stages in one Faust app. Run N of them on the same topics.

    intake.* ──► intake ──► incidents ─────────────────────────────────────────► (sink, in `cityops api`)
                   ├──► classified ──► callers ──► case-reports ──► cases ──┐
                   ├──► case-reports (anonymous) ───────────────────────────┤
                   ├──► task-events (whistles) ◄─────────────────────────────┘ dispatched / merged
                   └──► manual ──► queue ◄── manual-decisions ──► operator ──► task-events
    task-events ──► tasks (+ SLA timer) ──► task-updates, alerts ──► notify ──► webhooks
    dutylists ──► every worker (agents/dutylists.py)

One module per stage under `agents/`; `agents/wiring.py` holds what they share.
"""

from __future__ import annotations

import logging

import faust

from agents.callers import add_caller_stage
from agents.cases import add_case_stage
from agents.dutylists import DutyLists
from agents.faust_patches import apply_faust_patches, apply_tansu_patches
from agents.intake import IntakeStage
from agents.models import ModelsInForce
from agents.notify import add_notify_stage
from agents.queue import QueueStage
from agents.supervision import supervise_partitions
from agents.tasks import TaskStage
from agents.views import add_views
from agents.wiring import Wiring
from infra.kafka.brokerwatch import BrokerWatch
from infra.kafka.security import faust_credentials, kafka_python_security
from infra.settings import Settings
from pipeline.dedupe import MergePolicy
from pipeline.dutylists import DutyBook
from pipeline.textmodel import TopClassModel
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


def create_worker_app(settings: Settings, bootstrap: DutyBook, model: TopClassModel | None) -> faust.App:
    """`bootstrap` is the duty list in force until a version is published on the topic; `model` the
    trained text model (None: keywords alone, and more incidents for the operators)."""
    servers = settings.kafka_bootstrap_servers
    if not servers:
        raise ValueError("the worker needs KAFKA_BOOTSTRAP_SERVERS (cityops worker/demo start a broker when unset)")
    apply_faust_patches()  # before any commit: at-least-once rests on them
    if settings.kafka_flavor == "tansu":
        apply_tansu_patches(servers)

    app = faust_app(settings, servers)
    wiring = Wiring(app, settings, TopicNames(settings.topic_prefix), settings.clock().now)
    dutylists = DutyLists(wiring, bootstrap, ModelsInForce(wiring, model))

    def tables_ready() -> bool:
        """Tables are complete only once recovery from their changelogs has finished: the timers wait
        for this (a timer that proposes nothing does no harm while the broker is away)."""
        return app.tables.recovery.completed.is_set() and not app.rebalancing and dutylists.ready.is_set()

    def ready() -> bool:
        """What /health says: the tables ready, the broker answering and every stage running (not
        crashed, waiting for Faust's supervisor to start it again)."""
        return tables_ready() and watch.state.reachable and not watch.lost and all(stages_running().values())

    def stages_running() -> dict[str, bool]:
        # Faust keeps an agent's running actors only in this attribute (no public accessor).
        return {agent.name: bool(agent._actors) and not any(actor.crashed for actor in agent._actors)
                for agent in app.agents.values()}

    merge_policy = MergePolicy(within_m=settings.merge_within_m, within_hours=settings.merge_within_hours)
    stages = [IntakeStage(wiring, dutylists).state, add_caller_stage(wiring, dutylists, merge_policy),
              add_case_stage(wiring, dutylists, merge_policy), QueueStage(wiring, dutylists).state]
    task_stage = TaskStage(wiring, dutylists, bootstrap.units, tables_ready)
    stages.append(task_stage.state)
    add_notify_stage(wiring)
    tables = {name: table for stage in stages for name, table in stage.tables.items()}
    retentions = [retention for stage in stages for retention in stage.retentions]
    watch = BrokerWatch(servers, app.conf.id, [t.changelog_topic_name for t in tables.values()],
                        {topic: agent.name for agent in app.agents.values() for topic in agent.channel.topics},
                        tansu=settings.kafka_flavor == "tansu", security=kafka_python_security(settings))

    supervise_partitions(app, settings, watch, tables_ready)

    @app.timer(settings.retention_check_seconds)
    async def retention_timer() -> None:
        """Bounded memory: what has served its purpose leaves the tables (agents/retention.py)."""
        if tables_ready():
            for retention in retentions:
                await retention.tick()

    add_views(app, dutylists, ready, tables, task_stage.summaries, wiring.now, watch, stages_running)
    return app


def faust_app(settings: Settings, servers: str) -> faust.App:
    """The Faust app every stage registers on: at least once, tables in memory (rebuilt from their
    changelogs), the worker's web port on loopback with Faust's own table views off."""
    return faust.App(
        f"{settings.topic_prefix}{settings.app_id}",
        broker=[f"kafka://{s.strip()}" for s in servers.split(",")],
        broker_credentials=faust_credentials(settings),  # TLS / SASL on a production cluster
        store="memory://",
        datadir=str(settings.data_dir / "faust"),  # default: a directory in the cwd
        processing_guarantee="at_least_once",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_interval_seconds,
        broker_rebalance_timeout=settings.session_timeout_seconds,
        # A few ms of linger: the stages send in batches, and one produce request per message is
        # what kept the old stages slow.
        producer_linger=settings.producer_linger_seconds,
        # web_host only names the URL: web_bind is the address listened on (Faust's default: every one).
        web_bind=settings.worker_web_host,
        web_host=settings.worker_web_host,
        web_port=settings.worker_web_port,
        web_in_thread=False,
        # Faust's own views serve table contents (a queued incident's text, GPS, address) to anyone:
        # off. The worker serves /health/ and /metrics/ only; citizens' data is the api's, behind keys.
        web_tables_enabled=False, web_router_enabled=False, web_graph_enabled=False, web_stats_enabled=False,
    )
