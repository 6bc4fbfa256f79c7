"""`cityops demo --exit --json`, the main job, end to end in a subprocess: its own broker, worker and store."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_demo_accounts_for_every_event(tmp_path, model_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CLICKHOUSE_", "CITYOPS_"))}
    env |= {"CITYOPS_DATA_DIR": str(tmp_path), "CITYOPS_MODEL_DIR": str(model_dir)}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "demo", "--events", "400", "--exit", "--json"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ingested"] == 400
    assert summary["clickhouse_incidents"] + summary["deadlettered"] == 400
    assert summary["dispatched"] + summary["merged"] + summary["manual"] == summary["clickhouse_incidents"]
    assert summary["deadlettered"] > 0  # the feed is deliberately 2% broken
    assert summary["seconds"] > 0 and summary["dutylist_version"] == "A市-2026.2"
