"""One settings object, read once from the environment and passed down.

Two variables keep the names every Kafka / ClickHouse user already knows
(`KAFKA_BOOTSTRAP_SERVERS`, `CLICKHOUSE_URL`); everything else is `CITYOPS_*`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.clock import Clock
from pipeline.route import MIN_CONFIDENCE
from pipeline.sla import SlaClock
from pipeline.workcalendar import WorkCalendar


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CITYOPS_", frozen=True, extra="ignore")

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "CITYOPS_KAFKA_BOOTSTRAP_SERVERS"),
        description="host:port[,host:port]; unset = start the embedded Tansu broker",
    )
    # Production clusters: TLS (a CA, optionally a client certificate) and SASL (PLAIN, SCRAM), the same
    # for the workers, the api and the sink (infra/kafka/security.py turns these into each client's options).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    # "tansu" switches on the work-arounds for the embedded broker's faults
    # (wrong ListOffsets(latest)); set automatically when cityops starts it.
    kafka_flavor: Literal["kafka", "tansu"] = "kafka"
    clickhouse_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CLICKHOUSE_URL", "CITYOPS_CLICKHOUSE_URL"),
        description="http(s)://user:pass@host:8123/db for a server; chdb:///abs/path for embedded chDB; "
        "unset = chdb://<data_dir>/clickhouse",
    )
    clickhouse_database: str = "cityops"
    data_dir: Path = Path("var")
    # The real-data folder (citizen messages, NYC 311) that sits beside the checkout; never committed.
    shared_data_dir: Path = Path(__file__).resolve().parents[2] / "shared" / "data"

    # The duty list in force until a version is published on the dutylists topic, and the city
    # registry (units.yaml, grids.geojson beside it). Unset: the sample city shipped in the package.
    dutylist_file: Path | None = None
    units_file: Path | None = None
    scores_file: Path | None = None  # score schemes (考核 weights); unset: the sample city's scores.yaml

    # Where `cityops model train` writes versioned model artefacts and the worker loads CURRENT.
    model_dir: Path = Path("var/models")
    # Confidence below which an incident goes to the operator queue (why this default: pipeline.route).
    classify_threshold: float = Field(default=MIN_CONFIDENCE, ge=0, le=1)

    app_id: str = "cityops"
    # Prefix for every topic name; tests use a unique one so they never see each other's data.
    topic_prefix: str = ""
    # Partitions of every cityops topic: the most workers that can share the work. Replication 1
    # suits the embedded broker; a production cluster wants 3 (docs/running.md).
    topic_partitions: int = 4
    topic_replication_factor: int = Field(default=1, ge=1)
    # Producer linger: sends are batched for this long (the stages send in batches anyway).
    producer_linger_seconds: float = Field(default=0.005, ge=0)
    # Short group timeouts: the embedded broker holds the first JoinGroup for half the
    # session timeout, and a SIGKILLed worker's partitions move after one session timeout.
    session_timeout_seconds: float = 6.0
    heartbeat_interval_seconds: float = 1.0

    worker_web_host: str = "127.0.0.1"
    worker_web_port: int = 6066
    # `cityops api`: the HTTP face (figures, queue, tasks), the ClickHouse sink on the embedded default.
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # How old the figures the screens poll (/stats) may be: computed at most this often, never per request.
    stats_refresh_seconds: float = Field(default=1.0, gt=0)
    # API keys (hashed, with scopes: infra/api/keys.py); `cityops keys issue` writes it. Unset: <data_dir>/api-keys.json.
    api_keys_file: Path | None = None
    # Requests per key ("600/minute", the `limits` notation); bodies larger than this are refused (413).
    api_rate_limit: str = "600/minute"
    # Requests without a key (the screen, /units/, a reporter's Open311 lookup) per client address. A
    # wall screen makes about 100 a minute.
    api_public_rate_limit: str = "600/minute"
    # A reporter's lookup of a ticket by its number and the caller's phone (/screen/status), per client
    # address: a person looks up a ticket or two; guessing numbers and phones is made slow.
    api_lookup_rate_limit: str = "10/minute"
    # The api's /metrics: "key" (any valid key; Prometheus sends it as `authorization`), "public", or "off".
    api_metrics: Literal["key", "public", "off"] = "key"
    api_max_body_bytes: int = Field(default=1 << 20, gt=0)
    # An intake POST waits this long for the broker's acknowledgement, then answers 503 (retry later).
    api_publish_timeout_seconds: float = Field(default=5.0, gt=0)

    # Duplicate merge and hotspots (defaults; see pipeline.dedupe and pipeline.hotspots).
    merge_within_m: float = 100.0
    merge_within_hours: float = 24.0
    hotspot_threshold: int = 5
    hotspot_window_hours: float = 24.0

    # The dispatcher classifies in batches: one model call for up to this many incidents.
    dispatch_batch_size: int = 200
    dispatch_batch_seconds: float = 0.2

    sink_batch_size: int = 2000
    sink_flush_seconds: float = 1.0
    # After the first records of a batch arrive, the sink reads on this long before it inserts.
    sink_linger_seconds: float = Field(default=0.25, ge=0)
    # The sink has had a batch it read waiting for the store this long: /health turns not ready
    # (cityops_sink_behind_seconds, alert CityopsSinkStalled).
    sink_stall_seconds: float = Field(default=60.0, gt=0)

    # The SLA clock (pipeline.sla): pre-warning at this fraction of a limit, escalation to the
    # supervising unit this many working days after the finish deadline; the timer's period.
    sla_prewarning_fraction: float = Field(default=0.8, gt=0, lt=1)
    sla_escalate_after_days: float = Field(default=2.0, ge=0)
    sla_check_seconds: float = Field(default=10.0, gt=0)
    # Finished tasks, callers, cases and received ids leave the worker's tables this long after their
    # last activity (agents/retention.py); at least the merge and hotspot windows.
    retention_hours: float = Field(default=720.0, gt=0)
    retention_check_seconds: float = Field(default=60.0, gt=0)
    # A task event that comes before its task's `dispatched` (a merge sent while the dispatch is still
    # being re-read after a restart) is held this many real seconds for it, then dead-lettered
    # (agents/tasks.py); longer than the stalled-partition restart, which brings a skipped dispatch back.
    unknown_task_wait_seconds: float = Field(default=300.0, gt=0)
    # How often each process checks its broker: reachable, lag per stage, a lost log (infra/kafka/brokerwatch.py).
    broker_check_seconds: float = Field(default=5.0, gt=0)
    # A partition a worker holds whose commit has not moved this long while records wait is read again
    # from its commit, in the process (cityops/worker.py, docs/faust-on-tansu.md, "A partition that stops being read");
    # still so after stall_restart_seconds, the worker starts again in place. 0: never.
    stall_reread_seconds: float = Field(default=15.0, ge=0)
    stall_restart_seconds: float = Field(default=60.0, ge=0)
    # Office hours "09:00-12:00,13:30-17:30"; the city's holiday file for years chinese-calendar lacks.
    office_hours: str = "09:00-12:00,13:30-17:30"
    holidays_file: Path | None = None
    # A scaled clock for demos and simulations (pipeline.clock): unset = real time.
    clock_scale: float = Field(default=1.0, gt=0)
    clock_origin: dt.datetime | None = None
    clock_start: dt.datetime | None = None
    # Per-unit webhooks for alerts (infra.webhooks): a YAML file, unit code (or "*") → url, secret.
    webhooks_file: Path | None = None

    # Salt for hashing caller phone numbers; the clear number never leaves the normaliser.
    pii_salt: SecretStr = SecretStr("cityops-dev-salt-change-me")

    @model_validator(mode="after")
    def _retention_outlasts_the_windows(self) -> Settings:
        # A caller or case forgotten inside its window would let a repeat call open a second task.
        if self.retention_hours < max(self.merge_within_hours, self.hotspot_window_hours):
            raise ValueError("retention_hours: shorter than merge_within_hours or hotspot_window_hours")
        return self

    @property
    def messages_dir(self) -> Path:
        """The real citizen messages (labelled, unlabelled, replied, taxonomy)."""
        return self.shared_data_dir / "zh-gov-messages"

    def clock(self) -> Clock:
        return Clock(self.clock_scale, self.clock_origin, self.clock_start)

    def sla_clock(self) -> SlaClock:
        hours = tuple(tuple(dt.time.fromisoformat(t) for t in period.strip().split("-"))
                      for period in self.office_hours.split(","))
        calendar = (WorkCalendar.from_file(self.holidays_file, office_hours=hours) if self.holidays_file
                    else WorkCalendar(office_hours=hours))
        return SlaClock(calendar, self.sla_prewarning_fraction, self.sla_escalate_after_days)

    def resolved_api_keys_file(self) -> Path:
        return (self.api_keys_file or self.data_dir / "api-keys.json").resolve()

    def resolved_clickhouse_url(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    def as_dict(self) -> dict:
        """Printable view: secrets masked, URL passwords hidden."""
        shown = self.model_dump()
        shown["pii_salt"] = "**********"
        shown["kafka_sasl_password"] = None if self.kafka_sasl_password is None else "**********"
        shown["clickhouse_url"] = redact_url(self.resolved_clickhouse_url())
        return shown


def redact_url(url: str) -> str:
    """`scheme://user:password@host/...` → `scheme://***@host/...`."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
