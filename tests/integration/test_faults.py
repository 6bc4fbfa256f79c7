"""The fault suite: hostile input, a worker SIGKILLed again and again, the store failing. Each test
prints its counts. (A broker restart: tests/integration/test_broker_restart.py.)"""

from __future__ import annotations

from collections import Counter

from agents.topics import TopicNames
from infra.feeder import feed
from infra.store import Store
from pipeline.loadgen import IntakeEvent, generate
from tests.integration.hostile import ECHO_MARKER, hostile_messages
from tests.integration.test_worker import expected_incident_ids, stored_ids


def test_every_hostile_input_ends_as_an_incident_or_a_dead_letter(broker, pipeline_env, start_worker, capsys):
    prefix = pipeline_env["CITYOPS_TOPIC_PREFIX"]
    names = TopicNames(prefix)
    hostile = [IntakeEvent(source, key, value, False) for source, key, value in hostile_messages(60, prefix)]
    good = list(generate(40, run_tag=f"{prefix}good", bad_fraction=0))  # beside them, untouched
    events = hostile + good
    assert len(hostile) >= 200 and {e.source for e in hostile} == set(names.intakes)
    deployment = start_worker(pipeline_env)
    pid = deployment.worker.process.pid
    try:
        assert feed(broker.bootstrap_servers, names, events) == len(events)
        deployment.wait_until(lambda s: s["clickhouse_incidents"] + s["deadlettered"] >= len(events), timeout=180)
        assert deployment.wait_settled(timeout=60)
        assert deployment.worker.process.pid == pid and deployment.worker.process.poll() is None
    finally:
        deployment.stop()

    incidents = stored_ids(pipeline_env, "incidents", "incident_id")
    with Store(pipeline_env["CLICKHOUSE_URL"]) as store:
        letters = store.query("SELECT stage, reason FROM {db}.dead_letters FINAL")
    at_intake = [reason for stage, reason in letters if stage == "intake"]
    assert len(incidents) == len(set(incidents))
    assert len(incidents) + len(at_intake) == len(events)  # each once: an incident or a dead letter
    assert expected_incident_ids(good) <= set(incidents)
    assert all(reason for _, reason in letters)
    assert not [r for _, r in letters if ECHO_MARKER in r], "a reason repeats a value the client sent"
    assert not [r for _, r in letters if r.startswith("internal error")], "a hostile input hit a bug"
    log = deployment.worker.log_path.read_text(errors="replace")
    assert "crashed" not in log.lower() and "Traceback" not in log  # no stage restarted, nothing raised
    with capsys.disabled():
        print(f"\nhostile inputs: {len(hostile)} across {len(names.intakes)} topics (+{len(good)} good): "
              f"{len(incidents)} incidents, {len(at_intake)} dead letters at intake, "
              f"{len(letters) - len(at_intake)} later; reasons by field: "
              f"{dict(Counter(r.split(':')[0] for r in at_intake).most_common(8))}")
