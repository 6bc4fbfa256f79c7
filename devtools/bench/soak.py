"""`cityops bench soak`: does a worker's memory stay flat under steady load?

A deployment (api + one worker) on the bench's broker runs on a scaled clock (7200×: a real minute
is 5 city days, so most reports — 11 days to a reply at the median — finish within minutes) with a
short retention. It is fed a steady rate of generated reports stamped with the city's time, while
simulated departments accept, finish and close the work, reporters score it, and simulated
operators rule on the queue within 4 city hours. Every `sample_seconds` it records the RSS of the
worker, the api and the embedded broker, and what the worker's tables hold. After the warm-up (long
enough for reports to be finished and then forgotten) the worker's RSS must stay within ±10% of
its mean.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aiokafka import AIOKafkaProducer

from devtools.bench.pipeline import bench_broker, deployment_env, rss_mb
from devtools.processes import Deployment
from devtools.simulator import simulate_departments, simulate_operators
from pipeline.clock import Clock
from pipeline.loadgen import generate
from schemas.topics import TopicNames

FLAT_WITHIN = 0.10


def run_soak_bench(minutes: float, rate: float, clock_scale: float, retention_hours: float, warmup_minutes: float,
                   work_dir: Path, model_dir: Path | None, texts: Sequence[tuple[str, str]], reply_days: list[float], *,
                   sample_seconds: float = 30.0, log: Callable[[str], None] = print) -> dict:
    with bench_broker(work_dir) as (servers, broker):
        names = TopicNames(f"soak{int(time.time())}.")
        clock = Clock(clock_scale, dt.datetime.now(dt.timezone.utc), dt.datetime.now(dt.timezone.utc))
        env = deployment_env(servers, names, work_dir, model_dir) | {
            "CITYOPS_CLOCK_SCALE": str(clock.scale), "CITYOPS_CLOCK_ORIGIN": clock.origin.isoformat(),
            "CITYOPS_CLOCK_START": clock.start.isoformat(), "CITYOPS_SLA_CHECK_SECONDS": "1",
            "CITYOPS_RETENTION_HOURS": str(retention_hours), "CITYOPS_RETENTION_CHECK_SECONDS": "5"}
        deployment = Deployment.start(env, work_dir)
        stop = threading.Event()
        fed = [0]
        threads = [
            threading.Thread(target=simulate_departments, args=(servers, names, clock, reply_days), daemon=True,
                             kwargs={"seconds": None, "should_stop": stop.is_set}),
            threading.Thread(target=simulate_operators, args=(servers, names, clock), daemon=True,
                             kwargs={"seconds": None, "should_stop": stop.is_set}),
            threading.Thread(target=lambda: asyncio.run(_feed(servers, names, clock, rate, texts, stop, fed)),
                             daemon=True),
        ]
        for thread in threads:
            thread.start()
        samples: list[dict] = []
        started = time.monotonic()
        try:
            while (elapsed := time.monotonic() - started) < minutes * 60:
                time.sleep(min(sample_seconds, minutes * 60 - elapsed))
                for service in [deployment.api, *deployment.workers]:
                    service.check_alive()
                health = deployment.worker.health()
                sample = {"minute": round((time.monotonic() - started) / 60, 2), "fed": fed[0],
                          "worker_rss_mb": rss_mb(deployment.worker.process.pid),
                          "api_rss_mb": rss_mb(deployment.api.process.pid),
                          "broker_rss_mb": rss_mb(broker.process.pid) if broker else None,
                          "held": health["held"], "lag": health["broker"]["lag"]}
                samples.append(sample)
                log(f"{sample['minute']:6.1f} min  fed {sample['fed']:7d}  worker {sample['worker_rss_mb']:7.1f} MB  "
                    f"api {sample['api_rss_mb']:7.1f} MB  held {sample['held']}")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            deployment.stop()
    return {"minutes": minutes, "rate": rate, "clock_scale": clock_scale, "retention_hours": retention_hours,
            "warmup_minutes": warmup_minutes, "fed": fed[0], "worker_rss": verdict(samples, warmup_minutes),
            "samples": samples}


def verdict(samples: list[dict], warmup_minutes: float) -> dict:
    """The worker's RSS after the warm-up: its mean, range, and whether every sample is within ±10% of
    the mean."""
    steady = [s["worker_rss_mb"] for s in samples if s["minute"] >= warmup_minutes]
    if not steady:
        return {"flat": None, "why": "no sample after the warm-up: run longer"}
    mean = sum(steady) / len(steady)
    spread = max(abs(v - mean) for v in steady) / mean
    return {"samples": len(steady), "mean_mb": round(mean, 1), "min_mb": min(steady), "max_mb": max(steady),
            "largest_deviation": round(spread, 3), "flat": spread <= FLAT_WITHIN,
            "first_mb": steady[0], "last_mb": steady[-1]}


async def _feed(servers: str, names: TopicNames, clock: Clock, rate: float, texts, stop: threading.Event,
                fed: list[int]) -> None:
    """`rate` reports a second, each second's stamped with the city's time then (so their SLA clocks
    and the retention run as in a real city), ids unique across the run."""
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        second = 0
        while not stop.is_set():
            began = time.monotonic()
            events = list(generate(max(1, round(rate)), seed=second, run_tag=f"soak-{second}", texts=texts,
                                   start=clock.now() - dt.timedelta(hours=1)))
            await asyncio.gather(*[await producer.send(names.intake(e.source), key=e.key.encode(), value=e.value)
                                   for e in events])
            fed[0] += len(events)
            second += 1
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
    finally:
        await producer.stop()
