"""The Prometheus alert rules and the Alertmanager routing, checked by the real tools (Debian packages
`prometheus` and `prometheus-alertmanager`, which `make test` installs)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: `make test` installs it (apt-get install prometheus prometheus-alertmanager)")
    return path


def run(*args: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_rules_are_valid_and_their_unit_tests_pass():
    assert "SUCCESS: 10 rules found" in run(tool("promtool"), "check", "rules", str(RULES))
    out = run(tool("promtool"), "test", "rules", str(RULES.with_name("alerts_test.yml")))
    assert "SUCCESS" in out


def test_every_rule_is_unit_tested_and_uses_metrics_the_worker_exports():
    from prometheus_client import REGISTRY

    import infra.metrics  # noqa: F401  (registers the metrics)

    exported = {name for family in REGISTRY.collect() for name in [family.name, family.name + "_total"]}
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    tested = RULES.with_name("alerts_test.yml").read_text(encoding="utf-8")
    for rule in (r for g in groups for r in g["rules"]):
        assert f"alertname: {rule['alert']}" in tested, f"{rule['alert']} has no promtool test"
        for metric in set(re.findall(r"\bcityops_[a-z_]+", rule["expr"])):
            assert metric in exported, f"{rule['alert']} uses {metric}, which infra/metrics.py does not export"


@pytest.mark.parametrize(("labels", "receiver"), [
    (["alertname=CityopsWorkerDown", "team=sre", "severity=page"], "sre-oncall"),
    (["alertname=CityopsTaskEscalated", "team=ops-centre", "severity=page"], "ops-centre"),
    (["alertname=CityopsTasksOverdue", "team=cgj", "unit=cgj", "severity=ticket"], "unit-gateway"),
    (["alertname=SomethingElse"], "ops-centre"),
])
def test_alertmanager_routes_each_alert_to_who_must_act(labels, receiver):
    run(tool("amtool"), "check-config", str(ALERTMANAGER))
    out = run(tool("amtool"), "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert out.strip() == receiver
