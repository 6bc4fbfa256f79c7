"""The composition root: the `cityops` command and the assembly of its processes.

It sits above every other package (`schemas` ← `pipeline` ← `agents`, `infra`) and is the only
place that wires them together; nothing imports it.
"""
