"""The fault suite: hostile input, a worker SIGKILLed again and again, the store failing. Each test
prints its counts. (A broker restart: tests/integration/test_broker_restart.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from infra.kafka.feeder import feed
from infra.store import Store
from pipeline.loadgen import IntakeEvent, generate
from schemas.topics import TopicNames
from tests.integration.hostile import ECHO_MARKER, hostile_messages
from tests.integration.ledger import (
    all_landed,
    assert_each_stored_once,
    expected_incident_ids,
    outcome_line,
    stored_ids,
)


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


@contextlib.contextmanager
def store_refusing_writes(chdb_dir: Path):
    """The disk under the store refuses new files (every directory immutable, `chattr +i`): each
    insert fails as on a full or read-only disk, reads go on. A real fault, not a stand-in."""
    probe = chdb_dir.parent / "chattr-probe"
    probe.mkdir(exist_ok=True)
    if subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode != 0:
        pytest.fail("chattr +i is not permitted on this machine: the store-failure test cannot make the disk refuse "
                    "writes (run it as root on a filesystem with immutable flags: ext4, xfs, btrfs)")
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    directories = [str(p) for p in (chdb_dir / "store").rglob("*") if p.is_dir() and not p.is_symlink()]
    subprocess.run(["chattr", "+i", *directories], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *directories], check=True)


def test_the_store_failing_for_30_s_loses_nothing(broker, pipeline_env, start_worker, tmp_path, capsys):
    prefix = pipeline_env["CITYOPS_TOPIC_PREFIX"]
    names = TopicNames(prefix)
    events = list(generate(1000, run_tag=prefix, bad_fraction=0.02))
    before, during = events[:500], events[500:]
    deployment = start_worker(pipeline_env | {"CITYOPS_SINK_STALL_SECONDS": "10"})
    try:
        feed(broker.bootstrap_servers, names, before)
        stored = deployment.wait_until(all_landed(len(before), sum(e.valid for e in before)), timeout=120)
        assert deployment.api.health()["ready"]
        with store_refusing_writes(tmp_path / "clickhouse"):
            started = time.monotonic()
            feed(broker.bootstrap_servers, names, during)
            while time.monotonic() - started < 30:
                time.sleep(2)
                figures = deployment.stats()  # reads go on, and nothing new is counted as stored
                assert figures["clickhouse_incidents"] == stored["clickhouse_incidents"]
            health = deployment.api.health()
            sink = health["sink"]
            retries = float(re.search(r"^cityops_sink_retries_total (\S+)$", deployment.api.metrics_text(), re.M)[1])
            assert sink["running"] and retries >= 3  # backing off, not giving up
            # ...and saying so: not ready, and the figures' age is how long nothing was stored.
            assert not health["ready"] and sink["stalled"] and sink["behind_seconds"] > 10
            assert figures["figures_age_seconds"] > 10
            # Offsets stay behind what is unwritten: the sink's lag is what it could not store.
            assert sink["broker"]["lag"]["sink"] > 0
        valid = sum(e.valid for e in events)
        stats = deployment.wait_until(all_landed(len(events), valid), timeout=180)
        assert deployment.wait_settled(timeout=60), deployment.last_lag
        assert deployment.api.health()["ready"]
    finally:
        deployment.stop()
    counts = assert_each_stored_once(pipeline_env, events)
    with capsys.disabled():
        print(f"\nstore refusing writes for 30 s: {len(during)} events fed meanwhile, {retries:.0f} retried inserts, "
              f"sink lag {sink['broker']['lag']['sink']} during; after: {stats['clickhouse_incidents']} incidents, "
              f"{stats['deadlettered']} dead letters of {len(events)} events; {outcome_line(counts)}")


def test_a_worker_sigkilled_5_times_while_20000_events_flow_loses_and_doubles_nothing(broker, pipeline_env,
                                                                                        start_worker, capsys):
    from devtools.bench.pipeline import produce
    from tests.integration.test_worker import explain_loss

    prefix = pipeline_env["CITYOPS_TOPIC_PREFIX"]
    names = TopicNames(prefix)
    events = list(generate(20_000, run_tag=prefix, bad_fraction=0.01))
    valid = sum(e.valid for e in events)
    deployment = start_worker(pipeline_env)
    feeding = threading.Thread(target=lambda: asyncio.run(produce(broker.bootstrap_servers, names, events, rate=250)))
    feeding.start()
    landed_at_kill = []
    try:
        for _ in range(5):  # mid-stream each time: records fetched, some stored, offsets not all committed
            time.sleep(12)
            landed_at_kill.append(deployment.stats()["clickhouse_incidents"])
            deployment.kill_worker(0)
            deployment.add_worker(timeout=90)
        feeding.join()
        try:
            stats = deployment.wait_until(all_landed(len(events), valid), timeout=600)
        except TimeoutError:
            deployment.kill()
            raise AssertionError(explain_loss(broker, pipeline_env, events)) from None
        # A partition no longer read after a restart (docs/faust-on-tansu.md, "A partition that stops being read") is
        # read again after 15 s, the worker restarted in place after 60 s: then the lag drains too.
        assert deployment.wait_settled(timeout=240), deployment.last_lag
        # A task event that came before its dispatch was held for it (agents/tasks.py); none still waits.
        held_early = deployment.stats()["held"]["early_task_events"]
        log = deployment.worker.log_path.read_text(errors="replace")
        rereads = log.count("reading it again from there")
        restarts_in_place = log.count("starting the worker again")
    finally:
        deployment.stop()
    counts = assert_each_stored_once(pipeline_env, events)
    with Store(pipeline_env["CLICKHOUSE_URL"]) as store:
        tasks = store.count("tasks")
        letters_by_stage = dict(store.query("SELECT stage, count() FROM {db}.dead_letters FINAL GROUP BY stage"))
    # The broken events at intake, and nothing else: no valid event refused by a later stage.
    assert letters_by_stage == {"intake": len(events) - valid}, letters_by_stage
    assert held_early == 0
    with capsys.disabled():
        print(f"\nSIGKILL x5 during {len(events)} events (incidents stored at each kill: {landed_at_kill}): "
              f"{stats['clickhouse_incidents']} incidents, dead letters by stage {letters_by_stage}, {tasks} tasks; "
              f"{outcome_line(counts)}; no lag left; stalled partitions read again: "
              f"{rereads}, restarts in place: {restarts_in_place}; task events held for their dispatch: "
              f"{log.count('came before its dispatch')}")
