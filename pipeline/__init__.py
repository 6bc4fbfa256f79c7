"""Pure domain logic over `schemas`: no Kafka, no ClickHouse, no network. The only I/O is reading
and writing the city's own files (registry, duty lists, model artefacts: `dutylists`, `modelfiles`).

`pipeline.cli` is the one exception: it is the composition root that wires `agents` and `infra`
together, and it imports them lazily inside each command.
"""
