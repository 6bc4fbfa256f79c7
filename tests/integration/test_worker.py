"""The whole path on real components: Tansu → Faust worker(s) → api (sink) → chDB, exactly once, also
across a SIGKILL, and with two workers sharing the partitions when one of them is killed."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.partitioner.default import murmur2

from infra.kafka.admin import ensure_topics
from infra.kafka.feeder import feed
from infra.settings import Settings
from infra.store import Store
from pipeline.dutylists import load_registry
from pipeline.loadgen import IntakeEvent, generate
from pipeline.locate import Locator
from pipeline.normalize import incident_id_of, parse_intake, to_incident
from schemas.batches import messages_of
from schemas.topics import TopicNames
from tests.integration.ledger import all_landed, assert_each_stored_once, expected_incident_ids, stored_ids

NOW = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)


def test_every_event_lands_once_and_bad_ones_are_dead_lettered(broker, pipeline_env, start_worker, tmp_path):
    events = list(generate(800, run_tag=pipeline_env["CITYOPS_TOPIC_PREFIX"], bad_fraction=0.03))
    valid = sum(e.valid for e in events)
    # A ticket sent again as it was (a client's retry), then its id reused with other content.
    ticket = next(e for e in events if e.valid and e.source == "hotline")
    reused = {**json.loads(ticket.value), "text": "燃气泄漏，气味很大，请尽快处理"}
    again = [ticket, IntakeEvent("hotline", ticket.key, json.dumps(reused, ensure_ascii=False).encode(), True)]
    names = TopicNames(pipeline_env["CITYOPS_TOPIC_PREFIX"])
    worker = start_worker(pipeline_env)
    try:
        assert feed(broker.bootstrap_servers, names, events) == len(events)
        worker.wait_until(all_landed(len(events), valid), timeout=180)
        assert feed(broker.bootstrap_servers, names, again) == 2
        stats = worker.wait_until(all_landed(len(events) + 1, valid), timeout=60)
        assert stats["clickhouse_incidents"] == valid
        assert stats["deadlettered"] == len(events) - valid + 1  # the conflict
        metrics = worker.metrics_text()
    finally:
        worker.stop()

    incident_ids = stored_ids(pipeline_env, "incidents", "incident_id")
    assert len(incident_ids) == len(set(incident_ids))
    assert set(incident_ids) == expected_incident_ids(events)

    with Store(pipeline_env["CLICKHOUSE_URL"]) as store:
        rows = store.query("SELECT topic, stage, reason FROM {db}.dead_letters FINAL")
        first_text = store.query("SELECT text FROM {db}.incidents FINAL WHERE incident_id = %(id)s",
                                 {"id": next(iter(expected_incident_ids([ticket])))})
    assert len(rows) == len(events) - valid + 1
    assert all(topic.startswith(names.prefix + "intake.") and stage == "intake" and reason for topic, stage, reason in rows)
    # Never a silent overwrite: the first is kept, the reused id is dead-lettered naming what differs.
    conflicts = [reason for _, _, reason in rows if reason.startswith("conflict")]
    assert len(conflicts) == 1 and "with other text;" in conflicts[0] and "燃气" not in conflicts[0]
    assert first_text == [(to_incident(parse_intake("hotline", ticket.value), salt="s", now=NOW,
                                       locator=Locator(load_registry())).text,)]
    assert 'cityops_intake_conflicts_total{source="hotline"} 1.0' in metrics

    assert f'cityops_stage_in_total{{stage="intake"}} {float(len(events) + 2)}' in metrics
    assert f'cityops_stage_failed_total{{stage="intake"}} {float(len(events) - valid + 1)}' in metrics
    assert 'cityops_stage_latency_seconds_bucket{le="1.0",stage="intake"}' in metrics

    # Tables are co-partitioned with their source: stages send batch records, one per partition, yet
    # each table entry lands in the changelog partition Kafka's default partitioner gives its key —
    # where the api's single messages and the retention's forget requests for that key go too.
    partitions = Settings().topic_partitions
    for table in ("tasks", "cases", "callers"):
        changelog_partition = partitions_by_key(broker, f"{names.prefix}cityops-{table}-changelog", json_keys=True)
        assert changelog_partition, table
        assert {key: (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
                for key in changelog_partition} == changelog_partition, table

    # PII: the callers' phone numbers appear nowhere the worker wrote.
    phones = {json.loads(e.value)["caller_phone"] for e in events if e.valid and e.source == "hotline"}
    log_text = (tmp_path / "worker.log").read_text(errors="replace")
    assert phones and not any(p in log_text or p in metrics for p in phones)


def partitions_by_key(broker, topic: str, *, json_keys: bool) -> dict[str, int]:
    """key → partition for every record of `topic` (read to its true end)."""
    from kafka import KafkaConsumer, TopicPartition

    from infra.kafka.broker import true_end_offsets

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        ends = true_end_offsets(broker.bootstrap_servers, consumer.end_offsets(tps))
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found: dict[str, int] = {}
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    found[json.loads(record.key) if json_keys else record.key.decode()] = tp.partition
        return found
    finally:
        consumer.close()


def wait_for_committed(bootstrap: str, group: str, topic: str, total: int, timeout: float = 30) -> None:
    """Block until the group has committed `total` messages of `topic` (summed over partitions)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout
        committed = -1
        while time.monotonic() < deadline:
            offsets = admin.list_group_offsets(group)[group]
            committed = sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
            if committed >= total:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{group} committed {committed} of {total} on {topic}")
    finally:
        admin.close()


def explain_loss(broker, env: dict[str, str], events: list[IntakeEvent]) -> str:
    """Where the events that never landed went missing: per topic partition, the true end and what
    the worker's and the sink's groups committed; of the missing incidents, how many are on the
    incidents topic (then the sink lost them) and where their intake records sit (else the worker);
    the dead letters stored against the broken events fed; the incidents stored but never routed."""
    names = TopicNames(env["CITYOPS_TOPIC_PREFIX"])
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    committed = {group: admin.list_group_offsets(group)[group]
                 for group in (f"{names.prefix}cityops", f"{names.prefix}cityops-sink")}
    admin.close()
    missing = expected_incident_ids(events) - set(stored_ids(env, "incidents", "incident_id"))
    lines, on_incidents, where = [], 0, {}
    for topic in [*names.intakes.values(), names.incidents]:
        ends = {}
        for tp, record, end in _every_record(broker, topic):
            ends[tp] = end
            if record is None:
                continue
            if topic == names.incidents:
                on_incidents += sum(json.loads(m).get("incident_id") in missing
                                    for m in messages_of(record.value, record.headers))
            else:
                where.setdefault(record.key.decode(), (tp.partition, record.offset))
        for tp, end in sorted(ends.items()):
            groups = {g.rsplit(".", 1)[-1]: c[tp].offset for g, c in committed.items() if tp in c}
            lines.append(f"{topic}[{tp.partition}] end {end} committed {groups}")
    keys = {e.key for e in events if e.valid and incident_id_of(parse_intake(e.source, e.value)) in missing}
    spots = sorted(where[k] for k in keys if k in where)
    with Store(env["CLICKHOUSE_URL"]) as store:  # stored, but neither dispatched, queued nor merged
        unrouted = store.query(
            "SELECT source, incident_id FROM {db}.incidents FINAL WHERE incident_id NOT IN (SELECT incident_id FROM "
            "{db}.dispatches FINAL WHERE role = 'primary' AND attempt = 0) AND incident_id NOT IN (SELECT incident_id "
            "FROM {db}.manual_reviews FINAL WHERE attempt = 0) AND incident_id NOT IN (SELECT incident_id FROM "
            "{db}.task_events FINAL WHERE kind = 'merged') LIMIT 40")
        dead_letters = store.count("dead_letters")
    return (f"{len(missing)} incidents missing, {on_incidents} of them on the incidents topic; their intake "
            f"records (partition, offset): {spots[:40]}\n"
            f"{dead_letters} dead letters stored of {sum(not e.valid for e in events)} broken events fed; "
            f"stored but never routed (source, incident): {unrouted}\n"
            f"where those wait on the routing stages' topics: {_on_stage_topics(broker, names, committed, unrouted)}\n"
            + "\n".join(lines))


def _on_stage_topics(broker, names: TopicNames, committed: dict, unrouted: list[tuple]) -> list[str]:
    """Each record of the classified and case-reports topics about an unrouted incident: its topic,
    partition and offset, and the worker group's commit of that partition (past it: taken and lost)."""
    wanted = {incident_id for _, incident_id in unrouted}
    worker_commits = committed.get(f"{names.prefix}cityops", {})
    found = []
    for topic in (names.classified, names.case_reports):
        for tp, record, _ in _every_record(broker, topic):
            if record is None or not record.value:
                continue
            for message in messages_of(record.value, record.headers):
                if json.loads(message).get("incident", {}).get("incident_id") in wanted:
                    commit = worker_commits.get(tp)
                    found.append(f"{topic}[{tp.partition}]@{record.offset} "
                                 f"(committed {commit.offset if commit else None})")
    return found


def _every_record(broker, topic: str):
    """(partition, record, the partition's true end) for every record of `topic`, from its start;
    a partition with no record once as (partition, None, end)."""
    from kafka import KafkaConsumer, TopicPartition

    from infra.kafka.broker import true_end_offsets

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        ends = true_end_offsets(broker.bootstrap_servers, consumer.end_offsets(tps))
        for tp in tps:
            if not ends[tp]:
                yield tp, None, 0
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    yield tp, record, ends[tp]
    finally:
        consumer.close()


def test_sigkill_loses_and_doubles_nothing(broker, pipeline_env, start_worker, tmp_path):
    prefix = pipeline_env["CITYOPS_TOPIC_PREFIX"]
    names = TopicNames(prefix)
    events = list(generate(2400, run_tag=prefix, bad_fraction=0.02))
    first, second, third = events[:800], events[800:1600], events[1600:]
    valid_first = sum(e.valid for e in first)

    # 1. Kill an idle deployment whose work is all committed: the restart must rebuild the task
    #    table from its changelog alone (this is where Tansu's wrong end offsets lost the tail).
    worker = start_worker(pipeline_env)
    feed(broker.bootstrap_servers, names, first)
    landed = worker.wait_until(all_landed(len(first), valid_first), timeout=180)
    landed = worker.wait_until(lambda s: s["held"]["tasks"] == s["clickhouse_tasks"] >= landed["dispatched"], timeout=30)
    wait_for_committed(broker.bootstrap_servers, f"{prefix}cityops", names.intakes["hotline"],
                       sum(e.source == "hotline" for e in first))
    worker.kill()
    worker = start_worker(pipeline_env)
    assert worker.stats()["held"]["tasks"] == landed["clickhouse_tasks"]

    # 2. Kill mid-stream: some of the second chunk stored, its offsets not all committed.
    feed(broker.bootstrap_servers, names, second)
    worker.wait_until(lambda s: s["clickhouse_incidents"] + s["deadlettered"] > len(first), timeout=60, interval=0.05)
    worker.kill()

    worker = start_worker(pipeline_env)
    try:
        feed(broker.bootstrap_servers, names, third)
        valid = sum(e.valid for e in events)
        try:
            stats = worker.wait_until(all_landed(len(events), valid), timeout=240)
        except TimeoutError:
            worker.kill()
            raise AssertionError(explain_loss(broker, pipeline_env, events)) from None
        assert stats["clickhouse_incidents"] == valid
        assert stats["deadlettered"] == len(events) - valid
    finally:
        worker.stop()

    incident_ids = stored_ids(pipeline_env, "incidents", "incident_id")
    assert sorted(incident_ids) == sorted(expected_incident_ids(events))
    dispatch_ids = stored_ids(pipeline_env, "dispatches", "dispatch_id")
    assert len(dispatch_ids) == len(set(dispatch_ids))


def test_table_recovers_a_changelog_whose_last_batch_holds_many_records(broker, pipeline_env, start_worker, tmp_path):
    """Under load Faust's producer packs many changelog records into one batch; Tansu then reports
    the end of the changelog as that batch's base offset + 1, and an uncorrected recovery stops
    there, silently dropping the rest of the table."""
    changelog = f"{pipeline_env['CITYOPS_TOPIC_PREFIX']}cityops-callers-changelog"
    ensure_topics(broker.bootstrap_servers, [changelog], partitions=4)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=1000, batch_size=1 << 20)
    for i in range(500):
        producer.send(changelog, key=json.dumps(f"reporter-{i}").encode(), value=b"[]",
                      partition=i % 4)
    producer.flush()
    producer.close()

    worker = start_worker(pipeline_env)
    try:
        assert worker.stats()["held"]["callers"] == 500
    finally:
        worker.stop()


def test_two_workers_share_the_partitions_and_one_killed_mid_stream_loses_nothing(broker, pipeline_env, start_worker):
    prefix = pipeline_env["CITYOPS_TOPIC_PREFIX"]
    names = TopicNames(prefix)
    events = list(generate(3000, run_tag=prefix, bad_fraction=0.02))
    first, rest = events[:1000], events[1000:]
    deployment = start_worker(pipeline_env, workers=2)
    feed(broker.bootstrap_servers, names, first)
    deployment.wait_until(all_landed(len(first), sum(e.valid for e in first)), timeout=180)
    # Both workers hold part of the task table: the 4 partitions are shared.
    assert all(w.health()["held"]["tasks"] > 0 for w in deployment.workers)

    feeding = threading.Thread(target=feed, args=(broker.bootstrap_servers, names, rest))
    feeding.start()
    deployment.wait_until(lambda s: s["clickhouse_incidents"] + s["deadlettered"] > len(first) + 200, timeout=60,
                          interval=0.05)
    deployment.kill_worker(1)  # mid-stream: its partitions move to the other worker
    feeding.join()
    try:
        valid = sum(e.valid for e in events)
        try:
            stats = deployment.wait_until(all_landed(len(events), valid), timeout=300)
        except TimeoutError:
            deployment.kill()
            raise AssertionError(explain_loss(broker, pipeline_env, events)) from None
        assert stats["clickhouse_incidents"] == valid and stats["deadlettered"] == len(events) - valid
        # Exactly once: each incident routed once (dispatched, merged or queued), no task opened twice.
        assert stats["dispatched"] + stats["merged"] + stats["manual"] == valid
        assert stats["held"]["tasks"] == stats["clickhouse_tasks"]
    finally:
        deployment.stop()

    assert_each_stored_once(pipeline_env, events)
