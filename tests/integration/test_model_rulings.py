"""`cityops model train --with-rulings`: a candidate learnt from the rulings before a cut-off, judged
against the model in force on the rulings after it, made CURRENT only when it is better."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cityops.cli import cli
from infra.settings import Settings
from pipeline.dispatch_eval import NONE, silver_truths
from pipeline.dutylists import load_dutybook
from pipeline.modelfiles import SILVER_FILE, read_jsonl
from pipeline.textmodel import TopClassModel

runner = CliRunner()


def rulings_from_silver(limit: int) -> list[dict]:
    """The silver messages as an operator would have ruled them, a minute apart."""
    book, start = load_dutybook(None, None), dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.timezone.utc)
    truths = [t for t in silver_truths(read_jsonl(Settings().messages_dir / SILVER_FILE), book)
              if t.item and t.item != NONE][:limit]
    return [{"kind": "dispatch", "ruling_id": t.key, "incident_id": t.key, "title": t.title, "text": t.text,
             "text_sha256": "0" * 64, "item_no": t.item, "units": [], "wrong_unit": "", "model_version": None,
             "decided_by": "op", "decided_at": (start + dt.timedelta(minutes=n)).isoformat()}
            for n, t in enumerate(truths)]


@pytest.fixture
def models(model_dir: Path, tmp_path: Path) -> Path:
    if TopClassModel.load(model_dir) is None or not (Settings().messages_dir / SILVER_FILE).exists():
        pytest.skip("needs the real data in ../shared/data (the labelled messages and dispatch-silver.jsonl)")
    return Path(shutil.copytree(model_dir, tmp_path / "models"))


def train_with(models: Path, tmp_path: Path, rulings: list[dict], *extra: str) -> dict:
    path = tmp_path / "rulings.json"
    path.write_text(json.dumps(rulings, ensure_ascii=False), encoding="utf-8")
    done = runner.invoke(cli, ["model", "train", "--with-rulings", "--rulings", str(path), "--out", str(models),
                               "--json", *extra])
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_candidate_is_judged_on_later_rulings_and_becomes_current_only_when_better(models, tmp_path):
    in_force = (models / "CURRENT").read_text().strip()
    report = train_with(models, tmp_path, rulings_from_silver(200))
    assert (report["learnt_from"], report["judged_on"]) == (160, 40)  # four fifths before the cut-off
    assert set(report["figures"]) == {"in_force", "candidate"} and report["why"]
    current = (models / "CURRENT").read_text().strip()
    assert current == (f"topclass-{report['candidate']}" if report["promoted"] else in_force)


def test_too_few_later_rulings_judge_nothing(models, tmp_path):
    in_force = (models / "CURRENT").read_text().strip()
    rulings = rulings_from_silver(30)
    report = train_with(models, tmp_path, rulings, "--cut-off", rulings[25]["decided_at"])
    assert not report["promoted"] and report["judged_on"] == 5 and "at least 20" in report["why"]
    assert (models / "CURRENT").read_text().strip() == in_force
