"""The outside world: broker, ClickHouse store, metrics, deployment files."""
