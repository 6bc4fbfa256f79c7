"""Prometheus metrics. One prefix, base units, bounded labels (stage, source, unit code — never ids)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

STAGE_IN = Counter("cityops_stage_in_total", "Messages a stage received", ["stage"])
STAGE_OUT = Counter("cityops_stage_out_total", "Messages a stage emitted", ["stage"])
STAGE_FAILED = Counter("cityops_stage_failed_total", "Messages a stage sent to the dead-letter topic", ["stage"])
DEAD_LETTERS = Counter("cityops_dead_letters_total", "Dead letters written", ["stage"])
STAGE_LAST_PROCESSED = Gauge("cityops_stage_last_processed_timestamp_seconds", "Unix time a stage last finished a message", ["stage"])
# Time from the message entering its topic until the stage has handled it (queueing + processing).
STAGE_LATENCY = Histogram(
    "cityops_stage_latency_seconds", "Seconds from a message's topic timestamp to the stage finishing it", ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
DISPATCHES = Counter("cityops_dispatches_total", "Dispatches emitted", ["unit", "role"])
MANUAL_REVIEWS = Counter("cityops_manual_reviews_total", "Incidents sent to the operator queue; tanpai_refused="
                         "true when a dispatch to a street the duty list does not name was refused (摊派)",
                         ["tanpai_refused"])
SINK_ROWS = Counter("cityops_sink_rows_total", "Rows written to ClickHouse", ["table"])
SINK_RETRIES = Counter("cityops_sink_retries_total", "Failed ClickHouse batch writes that were retried")
SINK_BEHIND = Gauge("cityops_sink_behind_seconds", "Seconds since the sink last had everything it read stored: "
                    "about a second while it keeps up, growing while a batch waits for the store")
DUTYLIST_PUBLICATIONS = Counter("cityops_dutylist_publications_total", "Duty-list versions read from the topic",
                                ["result"])  # applied | refused
DUTYLIST_IN_FORCE = Info("cityops_dutylist", "The duty-list version new incidents are routed by")


def set_dutylist_version(version: str) -> None:
    DUTYLIST_IN_FORCE.info({"version": version})
INTAKE_CONFLICTS = Counter("cityops_intake_conflicts_total", "Reports dead-lettered because their source id came "
                           "before with other content (the first is kept)", ["source"])
MERGED = Counter("cityops_merged_reports_total", "Reports merged into an open case", ["rule"])
ALERTS = Counter("cityops_alerts_total", "Alerts raised", ["kind"])
TASK_EVENTS = Counter("cityops_task_events_total", "Task events applied by the task stage", ["kind"])
EARLY_TASK_EVENTS = Counter("cityops_early_task_events_total", "Task events that came before their task's dispatch: "
                            "held, then applied when it came or dead-lettered after the wait", ["outcome"])
REROUTED = Counter("cityops_rerouted_total", "Returned (退单) dispatches re-routed", ["to"])  # candidate | operator
SLA_ALERTS = Counter("cityops_sla_alerts_total", "SLA alerts raised, by kind and the unit that must act",
                     ["kind", "unit"])
TABLE_FORGOTTEN = Counter("cityops_table_entries_forgotten_total", "Worker table entries removed after the retention "
                          "(their history stays in ClickHouse)", ["table"])
# Set by infra/kafka/brokerwatch.py every few seconds.
CONSUMER_LAG = Gauge("cityops_consumer_lag", "Records in a topic that the stage reading it has not committed yet "
                     "(its consumer group's figure: every worker of the group reports the same)", ["stage", "topic"])
BROKER_UP = Gauge("cityops_broker_up", "1 when the broker answered the last check, else 0")
BROKER_LOG_LOST = Counter("cityops_broker_log_lost_total", "Times the broker was found to have lost its log (a topic "
                          "gone, or a partition's end moved back): messages it held and not yet processed are gone")
# Set when scraped, from the task table of this worker (its partitions).
TASKS = Gauge("cityops_tasks", "Tasks on this worker by status", ["status"])
TASKS_OVERDUE = Gauge("cityops_tasks_overdue", "Open tasks past a deadline, by unit and the limit broken (each task "
                      "once: finish if past it, else accept)", ["unit", "limit"])
WEBHOOK_ATTEMPTS = Counter("cityops_webhook_attempts_total", "Alert webhook delivery attempts", ["delivered"])
WEBHOOK_GAVE_UP = Counter("cityops_webhook_undelivered_total", "Alerts whose webhook delivery failed on every attempt")

# cityops api
API_INTAKE = Counter("cityops_api_intake_total", "Reports posted to the api, by source and outcome (accepted | "
                     "rejected)", ["source", "outcome"])
API_REQUEST_SECONDS = Histogram("cityops_api_request_seconds", "api requests by route template and status",
                                ["method", "route", "status"],
                                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
API_TASK_ACTIONS = Counter("cityops_api_task_actions_total", "Department and operator actions, by kind and outcome "
                           "(accepted | conflict)", ["kind", "outcome"])
