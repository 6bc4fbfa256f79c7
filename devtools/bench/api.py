"""`cityops bench api`: the latency of an intake POST, from the client's send to the 201 that comes
once the broker has acknowledged the ticket — one request at a time (what a hotline's operator
waits for), then N at once (what a vendor's batch replay sees). A live `cityops api`, a real broker."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from pathlib import Path

import httpx

from devtools.bench.pipeline import bench_broker, cpu_seconds
from devtools.processes import Service
from infra.api import keys
from infra.kafka.admin import ensure_cityops_topics
from schemas.topics import TopicNames


def _ticket(tag: str, n: int, text: str) -> bytes:
    return json.dumps({"ticket_no": f"{tag}-{n}", "received_at": "2026-12-01T09:30:00+08:00", "caller_phone":
                       "13812345678", "title": "路灯不亮", "text": text}, ensure_ascii=False).encode()


def _percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    at = lambda q: round(1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)  # noqa: E731
    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(1000 * ordered[-1], 2),
            "mean": round(1000 * statistics.fmean(ordered), 2)}


async def _sequential(client: httpx.AsyncClient, bodies: list[bytes]) -> list[float]:
    took = []
    for body in bodies:
        started = time.perf_counter()
        response = await client.post("/intake/hotline-tickets", content=body)
        took.append(time.perf_counter() - started)
        response.raise_for_status()
    return took


async def _concurrent(client: httpx.AsyncClient, bodies: list[bytes], concurrency: int) -> tuple[list[float], float]:
    queue, took = list(bodies), []

    async def one_client():
        while queue:
            body = queue.pop()
            started = time.perf_counter()
            response = await client.post("/intake/hotline-tickets", content=body)
            took.append(time.perf_counter() - started)
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return took, time.perf_counter() - started


def run_api_bench(requests: int, concurrency: int, work_dir: Path, text: str, log=print) -> dict:
    tag = f"bench{uuid.uuid4().hex[:6]}"
    names = TopicNames(f"{tag}.")
    keys_file = work_dir / "api-keys.json"
    token = keys.issue(keys_file, "bench", ["intake"]).token
    with bench_broker(work_dir) as (servers, broker):
        env = {"KAFKA_BOOTSTRAP_SERVERS": servers, "CITYOPS_KAFKA_FLAVOR": "tansu" if broker else "kafka",
               "CITYOPS_TOPIC_PREFIX": names.prefix, "CITYOPS_DATA_DIR": str(work_dir),
               "CLICKHOUSE_URL": os.environ.get("CLICKHOUSE_URL") or f"chdb://{work_dir / 'clickhouse'}",
               "CITYOPS_API_KEYS_FILE": str(keys_file), "CITYOPS_API_RATE_LIMIT": "100000000/minute"}
        ensure_cityops_topics(servers, names, 4)
        api = Service.start("api", env, work_dir / "api.log")
        try:
            api.wait_ready(90)
            figures = asyncio.run(_measure(api, token, tag, text, requests, concurrency, log))
        finally:
            api.stop()
        return {"requests": requests, "broker": "embedded Tansu" if broker else servers,
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "load_average": [round(x, 2) for x in os.getloadavg()]}, **figures}


async def _measure(api: Service, token: str, tag: str, text: str, requests: int, concurrency: int, log) -> dict:
    async with httpx.AsyncClient(base_url=api.url, timeout=30, headers={
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            limits=httpx.Limits(max_connections=concurrency)) as client:
        await _sequential(client, [_ticket(f"{tag}-warm", n, text) for n in range(50)])
        log(f"{requests} POSTs one at a time…")
        one = await _sequential(client, [_ticket(f"{tag}-seq", n, text) for n in range(requests)])
        log(f"{requests} POSTs, {concurrency} at a time…")
        cpu_before = cpu_seconds(api.process.pid)
        many, seconds = await _concurrent(client, [_ticket(f"{tag}-par", n, text) for n in range(requests)],
                                          concurrency)
        api_cpu = cpu_seconds(api.process.pid) - cpu_before
    return {"sequential_ms": _percentiles(one),
            "concurrent_ms": _percentiles(many) | {"concurrency": concurrency,
                                                   "requests_per_second": round(requests / seconds, 1)},
            "api_cpu_ms_per_request": round(1000 * api_cpu / requests, 2)}
