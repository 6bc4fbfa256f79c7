"""Files ↔ text model: read the labelled data, train, save, evaluate. Used by the CLI and the demo."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from pipeline.dutylists import load_dutylist, load_registry
from pipeline.textmodel import (TopClassModel, coverage_curve, cross_validate, document, lexicon_documents, scores,
                                seen_in_training, train, trained_on)

# Thresholds the coverage curve reports; the default operator threshold is chosen from it.
CURVE_THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9)


# The training files, best first: the large gold-labelled set (7,210 messages), else the small one.
TRAINING_FILES = ("labelled-large.jsonl", "labelled.jsonl")


def training_file(messages_dir: Path) -> Path | None:
    """The labelled file `cityops model train` uses by default, or None when there is none."""
    return next((messages_dir / name for name in TRAINING_FILES if (messages_dir / name).exists()), None)


def read_labelled(path: Path) -> list[dict]:
    """Rows with `title`, `text` (either may be null or empty: some messages have only one) and
    `label`; a row with neither title nor text has nothing to learn from and is left out."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                row = json.loads(line)
                missing = [k for k in ("title", "text", "label") if k not in row]
                if missing:
                    raise ValueError(f"{path}:{n}: missing {', '.join(missing)}")
                row = row | {"title": row["title"] or "", "text": row["text"] or ""}
                if row["title"] or row["text"]:
                    rows.append(row)
    return rows


def lexicon(taxonomy_file: Path, classes: set[str], dutylist_file: Path | None = None,
            units_file: Path | None = None) -> list[tuple[str, str]]:
    taxonomy = []
    if taxonomy_file.exists():
        with taxonomy_file.open(encoding="utf-8") as f:
            taxonomy = list(csv.reader(f))[1:]
    return lexicon_documents(taxonomy, load_dutylist(dutylist_file, load_registry(units_file)), classes)


def train_from_files(data: Path, taxonomy_file: Path, out: Path, dutylist_file: Path | None = None,
                     units_file: Path | None = None) -> Path:
    rows = read_labelled(data)
    model = train(rows, lexicon(taxonomy_file, {r["label"] for r in rows}, dutylist_file, units_file),
                  trained_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    return model.save(out)


def ensure_trained(model_dir: Path, messages_dir: Path, dutylist_file: Path | None, units_file: Path | None,
                   say: Callable[[str], None]) -> TopClassModel | None:
    """The model CURRENT in `model_dir`; if there is none, one trained first (offline, from the shared
    labelled messages in `messages_dir`). None when there is no model and no data to train one."""
    model = TopClassModel.load(model_dir)
    labelled = training_file(messages_dir)
    if model is None and labelled is not None:
        say(f"no text model in {model_dir}: training one on the real labelled messages in {labelled.name} (once)…")
        target = train_from_files(labelled, messages_dir / "taxonomy.csv", model_dir, dutylist_file, units_file)
        say(f"model {target.name} in {model_dir}")
        model = TopClassModel.load(model_dir)
    return model


def evaluate_file(data: Path, model_dir: Path, taxonomy_file: Path, *, cv: int = 0,
                  dutylist_file: Path | None = None, units_file: Path | None = None) -> dict:
    """Figures for DATA that never flatter the model: rows it was trained on are not scored by it.

    - `cv` > 1, or every row was in the model's training data: K-fold cross-validation on DATA;
    - some rows were in the training data: the model is scored on the others only;
    - otherwise the trained model is scored on every row.
    """
    rows = read_labelled(data)
    model = TopClassModel.load(model_dir) if cv <= 1 else None
    if cv <= 1 and model is None:
        raise FileNotFoundError(f"no trained model in {model_dir}: run `cityops model train`")
    seen = seen_in_training(model, rows) if model else 0
    if cv > 1 or seen == len(rows):
        folds = cv if cv > 1 else 5
        y, predicted, confidence = cross_validate(
            rows, lexicon(taxonomy_file, {r["label"] for r in rows}, dutylist_file, units_file), folds=folds)
        method = f"{folds}-fold cross-validation on the data file"
        if seen:
            method += f" (all {seen} rows were in the model's training data)"
        report = scores(y, predicted) | {"method": method, "seen_in_training": seen}
    else:
        unseen = [r for r in rows if not trained_on(model, r)]
        probabilities = model.predict([document(r["title"], r["text"]) for r in unseen])
        predicted = [max(p, key=p.get) for p in probabilities]
        confidence = [p[c] for p, c in zip(probabilities, predicted, strict=True)]
        y = [r["label"] for r in unseen]
        report = scores(y, predicted) | {"method": f"model {model.version}"
                                         + (f" on the {len(unseen)} rows it was not trained on" if seen else ""),
                                         "seen_in_training": seen}
    report["coverage_curve"] = coverage_curve(y, predicted, confidence, CURVE_THRESHOLDS)
    return report
