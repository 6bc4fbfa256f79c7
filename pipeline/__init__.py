"""Pure domain logic over `schemas`: no Kafka, no ClickHouse, no network.

`pipeline.cli` is the one exception: it is the composition root that wires `agents` and `infra`
together, and it imports them lazily inside each command.
"""
