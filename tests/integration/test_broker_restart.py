"""The embedded broker restarts and loses everything it held: the loss is detected and reported
(console, log, metric, /health), and the deployment works again on the broker's new log."""

from __future__ import annotations

import re
import time

from devtools.processes import poll_until
from infra.kafka.admin import ensure_cityops_topics
from infra.kafka.broker import free_port, start_embedded_broker
from infra.kafka.feeder import feed
from pipeline.loadgen import generate
from schemas.topics import TopicNames


def landed(n: int):
    def check(stats: dict) -> bool:
        return (stats["clickhouse_incidents"] + stats["deadlettered"] >= n
                and stats["dispatched"] + stats["manual"] + stats["merged"] >= stats["clickhouse_incidents"])
    return check


def test_a_broker_that_lost_its_log_is_reported_and_the_deployment_goes_on(pipeline_env, start_worker, tmp_path):
    port = free_port()
    broker = start_embedded_broker(port, log_file=tmp_path / "tansu.log")
    names = TopicNames(pipeline_env["CITYOPS_TOPIC_PREFIX"])
    env = {**pipeline_env, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "CITYOPS_BROKER_CHECK_SECONDS": "1"}
    try:
        ensure_cityops_topics(broker.bootstrap_servers, names, partitions=4)
        deployment = start_worker(env)
        worker = deployment.worker
        pid = worker.process.pid
        before = list(generate(200, run_tag="before", seed=1))
        assert feed(broker.bootstrap_servers, names, before) == len(before)
        stats = deployment.wait_until(landed(len(before)), timeout=120)
        # Settled: no stage and not the sink has records left to read.
        health = poll_until(worker.health, lambda h: h["broker"]["checked_at"] > time.time() - 3
                            and not any(h["broker"]["lag"].values()), timeout=30, what="worker lag 0")
        assert health["ready"] and health["broker"]["reachable"] and not health["broker"]["lost"]
        assert set(health["broker"]["lag"]) >= {"intake", "callers", "cases", "tasks", "notify"}
        assert health["stages"] and all(health["stages"].values())  # every stage running
        poll_until(deployment.api.health, lambda h: h["sink"]["broker"]["lag"] == {"sink": 0}, timeout=30,
                   what="sink lag 0")
        assert re.search(r'cityops_consumer_lag\{stage="intake",topic="[^"]*intake.hotline"\} 0.0',
                         worker.metrics_text())

        broker.process.kill()
        broker.process.wait()
        down = poll_until(worker.health, lambda h: not h["ready"], timeout=30, what="worker not ready")
        assert down["broker"]["reachable"] is False
        assert worker.process.poll() is None  # not ready, waiting: an unreachable broker may come back

        broker = start_embedded_broker(port, log_file=tmp_path / "tansu.log")  # empty: memory only
        # The worker sees the loss, says so, and starts again in place on the new log.
        poll_until(lambda: worker.log_path.read_text(errors="replace"),
                   lambda text: "the broker lost its log" in text and "starting again" in text,
                   timeout=60, what="the loss reported in the worker's log")
        assert worker.process.pid == pid and worker.process.poll() is None
        worker.wait_ready(90)
        api_health = poll_until(deployment.api.health, lambda h: h["sink"]["broker"]["lost"], timeout=30,
                                what="the sink's loss reported")
        assert any("is gone" in reason or "ends at" in reason for reason in api_health["sink"]["broker"]["lost"])
        assert "cityops_broker_log_lost_total 1.0" in deployment.api.metrics_text()

        after = list(generate(200, run_tag="after", seed=2))
        assert feed(broker.bootstrap_servers, names, after) == len(after)
        deployment.wait_until(landed(stats["clickhouse_incidents"] + stats["deadlettered"] + len(after)),
                              timeout=120)
    finally:
        broker.stop()
