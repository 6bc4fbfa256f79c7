"""The yardstick `cityops bench pipeline` measures the pipeline against: a one-hop Faust agent that
forwards every event with an awaited send, as a first Faust program would. Run by the bench as
`python -m devtools.bench.naive_agent` with its topics and broker in the environment (see `devtools/bench/pipeline.py`).
"""

from __future__ import annotations

import os

import faust


def create_naive_app(servers: str, app_id: str, sources: list[str], target: str, web_port: int) -> faust.App:
    app = faust.App(app_id, broker=[f"kafka://{s}" for s in servers.split(",")], store="memory://",
                    processing_guarantee="at_least_once", topic_replication_factor=1,
                    broker_session_timeout=6.0, broker_heartbeat_interval=1.0, broker_rebalance_timeout=6.0,
                    web_host="127.0.0.1", web_port=web_port, web_in_thread=False,
                    datadir=os.environ.get("CITYOPS_BENCH_DATADIR", "var/bench-faust"))
    source = app.topic(*sources, key_serializer="raw", value_serializer="raw")
    out = app.topic(target, key_serializer="raw", value_serializer="raw")

    @app.agent(source, name="forward", concurrency=1)
    async def forward(stream):
        async for event in stream.events():
            await out.send(key=event.key, value=event.value)

    return app


def main() -> None:
    env = os.environ
    app = create_naive_app(env["KAFKA_BOOTSTRAP_SERVERS"], env["CITYOPS_BENCH_APP_ID"],
                           env["CITYOPS_BENCH_SOURCES"].split(","), env["CITYOPS_BENCH_TARGET"],
                           int(env.get("CITYOPS_BENCH_WEB_PORT", "6099")))
    # loglevel info, as `cityops worker` runs: at "warning" Faust's spinner sets the root logger to DEBUG
    faust.Worker(app, loglevel="info").execute_from_commandline()


if __name__ == "__main__":
    main()
