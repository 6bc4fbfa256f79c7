"""Topics created before anything produces to them, with the partition counts Faust expects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kafka.admin import KafkaAdminClient

from schemas.topics import TopicNames


def ensure_cityops_topics(bootstrap_servers: str, names: TopicNames, partitions: int, replication: int = 1,
                          security: Mapping | None = None) -> None:
    """Every topic cityops uses, created before anything produces to it. `security`: TLS / SASL
    options for kafka-python (infra.kafka.security.kafka_python_security)."""
    ensure_topics(bootstrap_servers, names.all(), partitions, replication=replication, security=security)
    # Compacted: the latest record of each version is kept for ever (the embedded broker keeps
    # everything anyway). One partition, so every worker sees the versions in publication order.
    ensure_topics(bootstrap_servers, [names.dutylists, names.models], 1, configs={"cleanup.policy": "compact"},
                  replication=replication, security=security)


def ensure_topics(bootstrap_servers: str, names: Iterable[str], partitions: int,
                  configs: Mapping[str, str] | None = None, replication: int = 1,
                  security: Mapping | None = None) -> None:
    """Create missing topics with the given partition count, before anything produces to them.

    Producing first would let the broker auto-create them with its own default count, and
    Faust refuses tables whose source and changelog partition counts differ.
    """
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(n, partitions, replication, topic_configs=dict(configs or {})) for n in names if n not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process won the race; the count is the same
    finally:
        admin.close()
