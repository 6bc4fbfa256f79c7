"""`cityops bench pipeline`: the full pipeline against a raw aiokafka loop and a naive Faust agent,
on one broker, with the same generated events, in one invocation.

Each contender is started, warmed up with a few events, then given a burst of N events fed as fast
as the broker takes them; its time runs from the burst's first event until the last is out (raw,
naive: forwarded to their output topic; the pipeline: every event stored in ClickHouse or dead-
lettered, and every incident routed). Then the pipeline is fed at fixed rates and each incident's
intake → dispatch latency is read from the broker's record timestamps (intake record → the
`dispatched` task event, the operator review or the merge that routed it).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from infra.kafka.admin import ensure_topics
from infra.kafka.broker import EmbeddedBroker, free_port
from pipeline.loadgen import IntakeEvent
from schemas.batches import messages_of
from schemas.topics import TopicNames


@dataclass
class Burst:
    events: int
    seconds: float
    cpu_seconds: dict[str, float]

    @property
    def eps(self) -> float:
        return round(self.events / self.seconds, 1) if self.seconds else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, so far."""
    try:
        proc = psutil.Process(pid)
        total = sum(proc.cpu_times()[:2])
        for child in proc.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def rss_mb(pid: int) -> float:
    try:
        return round(psutil.Process(pid).memory_info().rss / 2**20, 1)
    except psutil.NoSuchProcess:
        return 0.0


async def produce(servers: str, names: TopicNames, events: Sequence[IntakeEvent], *, rate: float | None = None,
                  sent_at: dict[str, float] | None = None) -> float:
    """Send the events (at `rate` per second, or as fast as the broker acknowledges); returns the
    wall time of the first send. `sent_at` gets each event's key → send time (for latencies)."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        started = time.time()
        pending = []
        for n, event in enumerate(events):
            if rate:
                delay = started + n / rate - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if sent_at is not None:
                sent_at[event.key] = time.time()
            pending.append(await producer.send(names.intake(event.source), key=event.key.encode(), value=event.value))
        await asyncio.gather(*pending)
        return started
    finally:
        await producer.stop()


async def count_until(servers: str, topic: str, target: int, timeout: float) -> float:
    """Wall time at which `topic` holds `target` records (read from its start)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen, deadline = 0, time.monotonic() + timeout
        while seen < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: {seen} of {target} records after {timeout:.0f}s")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen += len(records)
        return time.time()
    finally:
        await consumer.stop()


async def run_raw_loop(servers: str, sources: list[str], target: str, stop: asyncio.Event) -> None:
    """The floor: consume a batch, produce it, commit once the batch is acknowledged."""
    consumer = AIOKafkaConsumer(*sources, bootstrap_servers=servers, group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=5, max_batch_size=1 << 20)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            fetched = await consumer.getmany(timeout_ms=100, max_records=5000)
            pending = [await producer.send(target, key=r.key, value=r.value)
                       for records in fetched.values() for r in records]
            if pending:
                await asyncio.gather(*pending)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


async def bench_raw(servers: str, names: TopicNames, warmup: Sequence[IntakeEvent],
                    events: Sequence[IntakeEvent]) -> Burst:
    target = f"{names.prefix}bench.raw-out"
    ensure_topics(servers, [target], 4)
    stop = asyncio.Event()
    loop_task = asyncio.create_task(run_raw_loop(servers, list(names.intakes.values()), target, stop))
    try:
        await produce(servers, names, warmup)
        await count_until(servers, target, len(warmup), timeout=60)
        cpu_before = cpu_seconds(os.getpid())
        started = await produce(servers, names, events)
        ended = await count_until(servers, target, len(warmup) + len(events), timeout=300)
        return Burst(len(events), ended - started, {"bench process (raw loop)": cpu_seconds(os.getpid()) - cpu_before})
    finally:
        stop.set()
        await loop_task


async def bench_naive_faust(servers: str, names: TopicNames, warmup: Sequence[IntakeEvent],
                            events: Sequence[IntakeEvent], log_dir: Path) -> Burst:
    target = f"{names.prefix}bench.faust-out"
    ensure_topics(servers, [target], 4)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": servers, "CITYOPS_BENCH_APP_ID": f"{names.prefix}bench-naive",
           "CITYOPS_BENCH_SOURCES": ",".join(names.intakes.values()), "CITYOPS_BENCH_TARGET": target,
           "CITYOPS_BENCH_WEB_PORT": str(free_port()), "CITYOPS_BENCH_DATADIR": str(log_dir / "naive-faust")}
    with open(log_dir / "naive-agent.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "devtools.bench.naive_agent"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        await produce(servers, names, warmup)
        await count_until(servers, target, len(warmup), timeout=120)
        cpu_before = cpu_seconds(process.pid)
        started = await produce(servers, names, events)
        ended = await count_until(servers, target, len(warmup) + len(events), timeout=600)
        return Burst(len(events), ended - started, {"naive agent": cpu_seconds(process.pid) - cpu_before})
    finally:
        process.kill()
        process.wait()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarise_latencies(latencies_ms: list[float]) -> dict:
    return {"n": len(latencies_ms), "p50": _round(percentile(latencies_ms, 0.5)),
            "p99": _round(percentile(latencies_ms, 0.99)), "max": _round(max(latencies_ms, default=None)),
            "mean": _round(statistics.fmean(latencies_ms) if latencies_ms else None)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


class RoutedWatcher:
    """Reads the topics where an incident's routing shows (dispatched task events, operator reviews,
    merges) and keeps, per incident, when it was first routed (the record's broker timestamp)."""

    def __init__(self, servers: str, names: TopicNames):
        self.servers, self.names = servers, names
        self.routed_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> RoutedWatcher:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t in (self.names.task_events, self.names.manual)
                   for p in sorted(consumer.partitions_for_topic(t) or [])]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while not self._stop.is_set():
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        self._note(record)
        finally:
            await consumer.stop()

    def _note(self, record) -> None:
        if record.value is None:  # a forget request
            return
        for value in messages_of(record.value, record.headers):
            message = json.loads(value)
            if record.topic == self.names.task_events and message.get("kind") not in ("dispatched", "merged"):
                continue
            incident_id = message.get("incident_id")
            if incident_id and incident_id not in self.routed_at:
                self.routed_at[incident_id] = record.timestamp / 1000


def wait_for(predicate: Callable[[], bool], *, timeout: float, idle: float, progress: Callable[[], int],
             what: str) -> None:
    """Until `predicate()`; fails after `timeout`, or sooner when `progress()` has not moved for `idle` s."""
    deadline, last, last_moved = time.monotonic() + timeout, None, time.monotonic()
    while not predicate():
        now = time.monotonic()
        value = progress()
        if value != last:
            last, last_moved = value, now
        if now - last_moved > idle:
            raise TimeoutError(f"{what}: no progress for {idle:.0f}s (at {value})")
        if now > deadline:
            raise TimeoutError(f"{what}: not done after {timeout:.0f}s (at {value})")
        time.sleep(0.25)


@dataclass
class Profiler:
    """py-spy sampling a process until stopped; writes collapsed stacks (one line per stack, count last)."""

    process: subprocess.Popen
    path: Path

    @classmethod
    def start(cls, pid: int, path: Path) -> Profiler:
        path.parent.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        process = subprocess.Popen([str(spy if spy.exists() else "py-spy"), "record", "--pid", str(pid), "--format", "raw",
                                    "--rate", "200", "--output", str(path)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the work starts
        return cls(process, path)

    def stop(self) -> dict:
        """Stop sampling; where the time went (`top_of_profile`)."""
        self.process.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return top_of_profile(self.path)


IDLE = ("select (selectors.py", "wait (threading.py", "_worker (concurrent/futures/thread.py", "sleep (")


def top_of_profile(path: Path, n: int = 30) -> dict:
    """Where the busy samples went: by own time (the innermost frame, "self") and, for frames of our
    packages and of the libraries a stage calls, by the share of busy samples under them ("inclusive").
    Samples parked in select/wait/sleep count as idle."""
    if not path.exists():
        return {}
    busy, idle, own, inclusive = 0, 0, {}, {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        if any(marker in frames[-1] for marker in IDLE):
            idle += int(count)
            continue
        busy += int(count)
        leaf = _frame_name(frames[-1])
        own[leaf] = own.get(leaf, 0) + int(count)
        for frame in {_frame_name(f) for f in frames}:
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
    if not busy:
        return {}

    def top(table: dict, keep=lambda name: True) -> list[tuple[str, float]]:
        return [(name, round(c / busy, 3)) for name, c in sorted(table.items(), key=lambda kv: -kv[1]) if keep(name)][:n]

    ours = ("agents/", "pipeline/", "schemas/", "infra/", "faust/", "aiokafka/", "pydantic", "json/", "logging/",
            "clickhouse_connect/", "chdb/")
    return {"busy_share": round(busy / (busy + idle), 3), "self": top(own),
            "inclusive": top(inclusive, lambda name: name.split(" ")[-1].startswith(ours))}


def _frame_name(frame: str) -> str:
    """'func (path/to/pkg/module.py:12)' → 'func pkg/module.py'."""
    function, _, where = frame.partition(" (")
    path = where.split(":")[0]
    return f"{function} {'/'.join(path.split('/')[-2:])}"


def incident_ids_by_key(events: Sequence[IntakeEvent]) -> dict[str, str]:
    """Intake key → the incident id the pipeline will give it (valid events only), computed offline."""
    from pipeline.dutylists import load_registry
    from pipeline.locate import Locator
    from pipeline.normalize import IntakeError, parse_intake, to_incident

    locator, at, found = Locator(load_registry()), dt.datetime.now(dt.timezone.utc), {}
    for event in events:
        try:
            found[event.key] = to_incident(parse_intake(event.source, event.value), salt="bench", now=at,
                                           locator=locator).incident_id
        except IntakeError:
            pass
    return found


@dataclass
class PipelineRun:
    """A deployment (api + worker) on the bench's broker, with its own store and topic prefix."""

    deployment: object
    stats: dict = field(default_factory=dict)

    def landed_and_routed(self, total: int) -> Callable[[], bool]:
        def check() -> bool:
            s = self.stats or self.refresh()
            return (s["clickhouse_incidents"] + s["deadlettered"] >= total
                    and s["dispatched"] + s["manual"] + s["merged"] >= s["clickhouse_incidents"])
        return check

    def refresh(self) -> dict:
        self.stats = self.deployment.stats()
        return self.stats

    def progress(self) -> int:
        s = self.refresh()
        return s["clickhouse_incidents"] + s["deadlettered"] + s["dispatched"] + s["manual"] + s["merged"]


def deployment_env(servers: str, names: TopicNames, work_dir: Path, model_dir: Path | None) -> dict[str, str]:
    """The environment of a bench's own deployment (api + workers) on `servers`, its topics made."""
    from infra.kafka.admin import ensure_cityops_topics

    ensure_cityops_topics(servers, names, 4)
    env = {"KAFKA_BOOTSTRAP_SERVERS": servers, "CITYOPS_KAFKA_FLAVOR": os.environ.get("CITYOPS_KAFKA_FLAVOR", "tansu"),
           "CITYOPS_TOPIC_PREFIX": names.prefix, "CITYOPS_DATA_DIR": str(work_dir),
           "CLICKHOUSE_URL": os.environ.get("CLICKHOUSE_URL") or f"chdb://{work_dir / 'clickhouse'}"}
    if model_dir is not None:
        env["CITYOPS_MODEL_DIR"] = str(model_dir)
    return env


def bench_pipeline(servers: str, names: TopicNames, warmup: Sequence[IntakeEvent], events: Sequence[IntakeEvent],
                   rate_events: dict[float, Sequence[IntakeEvent]], work_dir: Path, model_dir: Path | None,
                   broker_pid: int | None, profile: Path | None = None, workers: int = 1, log=print) -> dict:
    """The full pipeline: a burst until every event is stored and routed, then fixed offered rates."""
    from devtools.processes import Deployment

    deployment = Deployment.start(deployment_env(servers, names, work_dir, model_dir), work_dir, workers=workers)
    run = PipelineRun(deployment)
    watcher = RoutedWatcher(servers, names).start()
    try:
        asyncio.run(produce(servers, names, warmup))
        wait_for(run.landed_and_routed(len(warmup)), timeout=300, idle=60, progress=run.progress, what="warm-up")
        worker_pids, api_pid = [w.process.pid for w in deployment.workers], deployment.api.process.pid
        worker_pid = worker_pids[0]

        def workers_cpu() -> float:
            return sum(cpu_seconds(pid) for pid in worker_pids)

        cpu_before = {"worker": workers_cpu(), "api": cpu_seconds(api_pid),
                      "broker": cpu_seconds(broker_pid) if broker_pid else 0.0}
        profiler = Profiler.start(worker_pid, profile) if profile else None
        log(f"pipeline: burst of {len(events)} events…")
        expected = incident_ids_by_key(events)
        started = asyncio.run(produce(servers, names, events))
        wait_for(run.landed_and_routed(len(warmup) + len(events)), timeout=3600, idle=60, progress=run.progress,
                 what="pipeline burst")
        # The end is read from the record timestamps and the sink's clock, not from when a poll saw it:
        # the last incident routed, or the last batch stored, whichever came later.
        routed = [watcher.routed_at[i] for i in expected.values() if i in watcher.routed_at]
        stored = deployment.api.health()["sink"]["last_stored_at"] or time.time()
        ended = max([stored, *routed])
        top = profiler.stop() if profiler else {}
        burst = Burst(len(events), ended - started, {
            "worker": round(workers_cpu() - cpu_before["worker"], 2),
            "api": round(cpu_seconds(api_pid) - cpu_before["api"], 2),
            "broker": round(cpu_seconds(broker_pid) - cpu_before["broker"], 2) if broker_pid else None})
        rss = {"worker": max(rss_mb(pid) for pid in worker_pids), "api": rss_mb(api_pid)}
        latency = {}
        for rate, chunk in rate_events.items():
            log(f"pipeline: {len(chunk)} events offered at {rate:g}/s…")
            latency[f"{rate:g}"] = offered_rate(servers, names, chunk, rate, watcher)
        log("the sink alone, over everything the run stored…")
        intake_events = len(warmup) + len(events) + sum(map(len, rate_events.values()))
        sink = sink_alone(deployment_env(servers, names, work_dir, model_dir) | {
            "CLICKHOUSE_URL": f"chdb://{work_dir / 'sink-alone'}"}, work_dir,
            profile.with_name("sink-profile.txt") if profile else None)
        if "cpu_seconds" in sink:
            sink["cpu_ms_per_intake_event"] = round(1000 * sink["cpu_seconds"] / intake_events, 3)
        return {"burst": burst, "rss_mb": rss, "latency_ms": latency, "profile_top": top, "sink_alone": sink,
                "stats": {k: run.stats[k] for k in ("clickhouse_incidents", "deadlettered", "dispatched", "manual",
                                                   "merged")}}
    finally:
        watcher.stop()
        deployment.stop()


def sink_alone(env: dict[str, str], work_dir: Path, profile: Path | None) -> dict:
    """devtools/bench/sink.py in its own process (sampled by py-spy when `profile`): its figures."""
    process = subprocess.Popen([sys.executable, "-m", "devtools.bench.sink"], env={**os.environ, **env},
                               stdout=subprocess.PIPE, stderr=open(work_dir / "sink-alone.log", "ab"))
    profiler = Profiler.start(process.pid, profile) if profile else None
    out, _ = process.communicate(timeout=1800)
    top = profiler.stop() if profiler else {}
    if process.returncode != 0:  # the run's other figures still count: the failure is reported among them
        tail = (work_dir / "sink-alone.log").read_text(errors="replace").strip().splitlines()[-12:]
        return {"failed": f"rc {process.returncode}", "log_tail": tail}
    return json.loads(out.decode().strip().splitlines()[-1]) | ({"profile_top": top} if top else {})


def offered_rate(servers: str, names: TopicNames, events: Sequence[IntakeEvent], rate: float,
                 watcher: RoutedWatcher, settle_seconds: float = 30.0) -> dict:
    """Feed at `rate`/s; each incident's intake → routed latency from the broker's record timestamps.
    Kept up: the feed reached 95% of the rate and the last incident was routed within 5 s of the feed's end."""
    expected = incident_ids_by_key(events)
    sent_at: dict[str, float] = {}
    started = asyncio.run(produce(servers, names, events, rate=rate, sent_at=sent_at))
    fed_at = time.time()
    deadline = fed_at + settle_seconds
    while time.time() < deadline and not all(i in watcher.routed_at for i in expected.values()):
        time.sleep(0.1)
    latencies = [1000 * (watcher.routed_at[i] - sent_at[k]) for k, i in expected.items() if i in watcher.routed_at]
    routed_last = max((watcher.routed_at[i] for i in expected.values() if i in watcher.routed_at), default=fed_at)
    achieved = len(events) / max(fed_at - started, 1e-9)
    missing = sum(1 for i in expected.values() if i not in watcher.routed_at)
    return summarise_latencies(latencies) | {
        "offered_per_s": rate, "achieved_per_s": round(achieved, 1), "not_routed_after_settle": missing,
        "drain_seconds_after_feed": round(max(0.0, routed_last - fed_at), 2),
        "kept_up": achieved >= 0.95 * rate and missing == 0 and routed_last - fed_at <= 5.0}


@contextlib.contextmanager
def bench_broker(work_dir: Path) -> Iterator[tuple[str, EmbeddedBroker | None]]:
    """KAFKA_BOOTSTRAP_SERVERS when set, else an embedded broker for the run: (servers, broker or None)."""
    from infra.kafka.broker import start_embedded_broker

    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if servers:
        yield servers, None
        return
    broker = start_embedded_broker(log_file=work_dir / "tansu.log")
    try:
        yield broker.bootstrap_servers, broker
    finally:
        broker.stop()


def run_pipeline_bench(events: int, rates: Sequence[float], rate_seconds: float, seed: int, work_dir: Path,
                       model_dir: Path | None, texts, profile: Path | None = None, workers: int = 1,
                       log=print) -> dict:
    """(a) raw aiokafka, (b) the naive Faust agent, (c) the full pipeline, on one broker, same events."""
    import platform

    from pipeline.loadgen import generate

    tag = f"bench{uuid.uuid4().hex[:6]}"
    with bench_broker(work_dir) as (servers, broker):
        # The same events for every contender, each on its own topics (a fresh prefix), 2% broken.
        feed = list(generate(events + 50, seed=seed, run_tag=tag, texts=texts))
        warmup, burst = feed[:50], feed[50:]
        figures: dict = {"events": events, "partitions": 4, "workers": workers, "machine": {"cpus": os.cpu_count(),
                         "python": platform.python_version(), "load_average": [round(x, 2) for x in os.getloadavg()]},
                         "broker": "embedded Tansu" if broker else servers}
        log("raw aiokafka loop…")
        raw_names = TopicNames(f"{tag}-raw.")
        ensure_topics(servers, raw_names.intakes.values(), 4)
        raw = asyncio.run(bench_raw(servers, raw_names, warmup, burst))
        log(f"  {raw.eps} events/s; naive Faust agent…")
        naive_names = TopicNames(f"{tag}-naive.")
        ensure_topics(servers, naive_names.intakes.values(), 4)
        naive = asyncio.run(bench_naive_faust(servers, naive_names, warmup, burst, work_dir))
        log(f"  {naive.eps} events/s; the full pipeline…")
        rate_events = {rate: list(generate(int(rate * rate_seconds), seed=seed + n + 1, run_tag=f"{tag}-r{n}",
                                           texts=texts, bad_fraction=0.0))
                       for n, rate in enumerate(rates)}
        result = bench_pipeline(servers, TopicNames(f"{tag}-pipe."), warmup, burst, rate_events, work_dir / "pipeline",
                                model_dir, broker.process.pid if broker else None, profile=profile, workers=workers,
                                log=log)
        pipeline = result["burst"]
        figures |= {
            "raw_eps": raw.eps, "faust_eps": naive.eps, "pipeline_eps": pipeline.eps,
            "ratio_vs_faust": round(pipeline.eps / naive.eps, 3) if naive.eps else None,
            "ratio_vs_raw": round(pipeline.eps / raw.eps, 3) if raw.eps else None,
            "seconds": {"raw": round(raw.seconds, 2), "faust": round(naive.seconds, 2),
                        "pipeline": round(pipeline.seconds, 2)},
            "cpu_seconds": {"raw": raw.cpu_seconds, "faust": naive.cpu_seconds, "pipeline": pipeline.cpu_seconds},
            "worker_cpu_ms_per_event": round(1000 * pipeline.cpu_seconds["worker"] / events, 2),
            "rss_mb": result["rss_mb"], "latency_ms": result["latency_ms"], "pipeline_outcome": result["stats"],
            "sink_alone": result["sink_alone"],
        }
        if profile:
            figures["profile_top"] = result["profile_top"]
        return figures


def run_replay_bench(path: Path, mapping_name: str, work_dir: Path, model_dir: Path | None, *,
                     limit: int | None = None, bulk=None, quiet_seconds: float = 3.0, log=print) -> dict:
    """`cityops replay` at full speed into a fresh deployment: how long sending takes, and how long
    until every order is stored with its whole history (the incidents in, each routed, and the
    task events quiet for `quiet_seconds`). With `bulk` (infra.replay.OfflineStages): `replay --bulk`,
    the finished orders into a store of their own, the rest through the deployment's stages."""
    from devtools.processes import Deployment
    from infra.kafka.intake_client import IntakeClient
    from infra.replay import bulk_replay, load_mapping, replay_file
    from infra.store import Store

    mapping = load_mapping(mapping_name)
    with bench_broker(work_dir) as (servers, broker):
        names = TopicNames(f"bench{uuid.uuid4().hex[:6]}-replay.")
        deployment = Deployment.start(deployment_env(servers, names, work_dir, model_dir), work_dir, workers=1)
        run = PipelineRun(deployment)
        try:
            log(f"replaying {path.name} with mapping {mapping.name}…")
            started = time.time()
            with IntakeClient(servers, topic_prefix=names.prefix) as client:
                if bulk is None:
                    sent = replay_file(client, path, mapping, limit=limit)
                else:
                    with Store(f"chdb://{work_dir / 'bulk-store'}") as store:
                        store.migrate()
                        migrated = time.time()
                        sent = bulk_replay(client, store, path, mapping, bulk, limit=limit)
                        bulk_seconds = time.time() - migrated
                        in_bulk = {t: store.count(t) for t in ("incidents", "tasks", "task_events")}
            quiet = {"events": -1, "since": time.monotonic()}

            def stored_whole() -> bool:
                s = run.refresh()
                if s["clickhouse_task_events"] != quiet["events"]:
                    quiet.update(events=s["clickhouse_task_events"], since=time.monotonic())
                return (s["clickhouse_incidents"] >= sent.sent and s["deadlettered"] >= sum(sent.refused.values())
                        and s["dispatched"] + s["manual"] >= s["clickhouse_incidents"]
                        and time.monotonic() - quiet["since"] >= quiet_seconds)

            wait_for(stored_whole, timeout=3600, idle=120, progress=lambda: run.stats.get("clickhouse_task_events", 0),
                     what="replay")
            ended = deployment.api.health()["sink"]["last_stored_at"] or time.time()
            s = run.stats
            if bulk is not None:  # the finished orders in the bulk store, the rest in the deployment's
                ended = max(ended, started + bulk_seconds)
                return {"file": path.name, "mapping": mapping.name, "records": sent.rows, "refused": sent.refused,
                        "stored_in_bulk": sent.stored, "bulk_seconds": round(bulk_seconds, 2),
                        "bulk_orders_per_s": round(sent.stored / bulk_seconds, 1) if bulk_seconds else None,
                        "through_the_stages": sent.sent, "stored_seconds": round(ended - started, 2),
                        "stored_per_s": round(sent.rows / (ended - started), 1) if ended > started else None,
                        "bulk_store": in_bulk, "stages_store": {"incidents": s["clickhouse_incidents"],
                                                                "tasks": s["clickhouse_tasks"],
                                                                "task_events": s["clickhouse_task_events"],
                                                                "manual": s["manual"]},
                        "broker": "embedded Tansu" if broker else servers}
            return {
                "file": path.name, "mapping": mapping.name, "records": sent.rows, "sent": sent.sent,
                "refused": sent.refused, "send_seconds": round(sent.seconds, 2),
                "sent_per_s": round(sent.sent / sent.seconds, 1) if sent.seconds else None,
                "stored_seconds": round(ended - started, 2),
                "stored_per_s": round(sent.sent / (ended - started), 1) if ended > started else None,
                "outcome": {"incidents": s["clickhouse_incidents"], "tasks": s["clickhouse_tasks"],
                            "task_events": s["clickhouse_task_events"], "manual": s["manual"],
                            "tasks_by_status": s["tasks_by_status"], "alerts": s["alerts"]},
                "broker": "embedded Tansu" if broker else servers,
            }
        finally:
            deployment.stop()
