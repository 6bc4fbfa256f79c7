"""A published model comes into force on every worker without a restart; a rollback puts the one
before back within seconds; a worker started after a swap runs the last one published, whole."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityops.cli import cli
from devtools.processes import poll_until
from pipeline.textmodel import TopClassModel, document, with_unit_head

runner = CliRunner()


@pytest.fixture
def two_models(model_dir: Path, tmp_path: Path) -> tuple[Path, str, str]:
    """The session's model (A, CURRENT) and another version beside it (B: a unit head from a few rows)."""
    first = TopClassModel.load(model_dir)
    if first is None or first.units is None:
        pytest.skip("needs the real data in ../shared/data (a model with a unit head)")
    models = Path(shutil.copytree(model_dir, tmp_path / "models"))
    rows = [(document("路灯不亮", "主干道路灯坏了"), "cgj"), (document("学校收费", "学校乱收费"), "jyj"),
            (document("社保", "社保卡补办"), "rsj")] * 3
    second = with_unit_head(first, rows)
    current = (models / "CURRENT").read_text()
    second.save(models)
    (models / "CURRENT").write_text(current)  # A stays CURRENT: B is only beside it
    return models, first.version, second.version


def models_in_force(deployment) -> list[str]:
    return [worker.health()["model_version"] for worker in deployment.workers]


def cli_run(env: dict[str, str], *args: str) -> str:
    done = runner.invoke(cli, list(args), env=env)
    assert done.exit_code == 0, done.output
    return done.output


def test_publish_and_rollback_reach_every_worker_and_a_restart_keeps_the_last(pipeline_env, start_worker, two_models):
    models, a, b = two_models
    env = pipeline_env | {"CITYOPS_MODEL_DIR": str(models)}
    deployment = start_worker(env, workers=2)
    assert models_in_force(deployment) == [a, a]  # nothing published yet: CURRENT at start

    cli_run(env, "model", "publish", "--version", b, "--by", "tests", "--note", "a candidate")
    poll_until(lambda: models_in_force(deployment), lambda v: v == [b, b], timeout=30, what="B on both workers")
    # The api says which model is in force, what it learnt from, and who published it.
    shown = deployment.api.get_json("/model/")
    assert (shown["in_force"]["version"], shown["in_force"]["published_by"]) == (b, "tests")
    assert shown["in_force"]["training"]["unit_rows"] == 9 and [p["version"] for p in shown["published"]] == [b]
    assert {"models", "by_day"} <= set(shown)

    assert f"model {a} back in force (was {b})" in cli_run(env, "model", "rollback", "--by", "tests")
    poll_until(lambda: models_in_force(deployment), lambda v: v == [a, a], timeout=30, what="A back on both")

    # A worker that starts after the swaps reads them all and runs only the last one, whole.
    cli_run(env, "model", "publish", "--version", b)
    deployment.kill_worker(0)
    deployment.add_worker(timeout=90)
    poll_until(lambda: models_in_force(deployment), lambda v: v == [b, b], timeout=30, what="B on the new worker")

    # A version the model directory does not hold is refused (dead-lettered); the model in force stays.
    assert runner.invoke(cli, ["model", "publish", "--version", "20990101-0000000000"], env=env).exit_code == 2
    assert models_in_force(deployment) == [b, b]
