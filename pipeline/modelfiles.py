"""Files ↔ text model: read the labelled data, train, save, evaluate. Used by the CLI and the demo."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from pipeline.dispatch_eval import NONE, reply_handlers, silver_truths
from pipeline.dutylists import DutyBook, load_dutybook, load_dutylist, load_registry
from pipeline.textmodel import (
    NO_ITEM,
    TopClassModel,
    coverage_curve,
    cross_validate,
    document,
    lexicon_documents,
    scores,
    seen_in_training,
    train,
    trained_on,
    with_unit_head,
)

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


# Files beside the labelled messages that say which unit a report is for (the unit head learns them).
SILVER_FILE, REPLIED_FILE = "dispatch-silver.jsonl", "replied.jsonl"
# What no item of a city's duty list covers, whatever the city: the courts' own business, party
# discipline, a thank-you. Short documents of the "no item" label beside the silver examples of it.
NO_ITEM_LEXICON = ("法院 判决 审判 诉讼 案件 执行 超期未判 立案 庭审 检察院", "党费 党员 党组织 党支部 入党 纪律处分 纪委",
                   "感谢 致谢 表扬 锦旗 赞扬 为人民服务的好干部", "村务公开 账务公开 村干部 贪污 挪用 纪检监察 举报干部")


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def unit_rows(messages_dir: Path, book: DutyBook) -> dict[str, list[tuple[str, str, str]]]:
    """(title, text, unit) of every report whose right unit is known, by source: `silver` (the readers'
    items, where both readers' choices have the same primary unit; NONE as the "no item" label),
    `replied` (the unit a government reply names as handling it, where it names exactly one),
    `list` (each duty item's own words, as its primary unit's) and `no_item` (NO_ITEM_LEXICON)."""
    found: dict[str, list[tuple[str, str, str]]] = {"silver": [], "replied": []}
    if (messages_dir / SILVER_FILE).exists():
        found["silver"] = [(t.title, t.text, NO_ITEM if t.unit == NONE else t.unit)
                           for t in silver_truths(read_jsonl(messages_dir / SILVER_FILE), book) if t.unit]
    if (messages_dir / REPLIED_FILE).exists():
        for row in read_jsonl(messages_dir / REPLIED_FILE):
            handlers = reply_handlers(row.get("reply") or "", book)
            if len(handlers) == 1:
                found["replied"].append((row.get("title") or "", row.get("text") or "", next(iter(handlers))))
    found["list"] = [(item.title, " ".join([*item.keywords, *item.examples, *item.category[1:]]), item.primary_unit)
                     for item in book.dutylist.items]
    found["no_item"] = [("", text, NO_ITEM) for text in NO_ITEM_LEXICON]
    return found


def train_from_files(data: Path, taxonomy_file: Path, out: Path, dutylist_file: Path | None = None,
                     units_file: Path | None = None) -> Path:
    """The top-class model from DATA, with a unit head from the reports beside it whose unit is known."""
    rows = read_labelled(data)
    model = train(rows, lexicon(taxonomy_file, {r["label"] for r in rows}, dutylist_file, units_file),
                  trained_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    known = unit_rows(data.parent, load_dutybook(dutylist_file, units_file))
    if known["silver"] or known["replied"]:
        model = with_unit_head(model, [(document(t, x), u) for rows_ in known.values() for t, x, u in rows_],
                               note={"unit_rows_by_source": {k: len(v) for k, v in known.items()}})
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


def evaluate_dispatch(model: TopClassModel, book: DutyBook, decide: Callable[[TopClassModel, list], list],
                      truths: dict[str, list], training: dict[str, list[tuple[str, str, str]]], *,
                      folds: int = 5, cross_validate_sets: tuple[str, ...] = ()) -> dict:
    """Dispatch figures (pipeline.dispatch_eval) for each set of `truths`, by the unit gate (the model's unit
    head) and, beside it, by the class gate (the same model without its head: the decision before).
    Sets in `cross_validate_sets` taught the unit head: they are scored out of fold, K heads each trained
    on `training` without the fold (near-duplicates kept on one side), never by the head that saw them."""
    from sklearn.model_selection import GroupKFold

    from pipeline.dispatch_eval import figures
    from pipeline.textmodel import near_duplicate_groups

    class_gate = model.class_gate()
    report: dict = {}
    for name, rows in truths.items():
        report[name] = {"class_gate": figures(rows, decide(class_gate, rows))}
        if model.units is None:
            continue
        if name not in cross_validate_sets:
            report[name]["unit_gate"] = figures(rows, decide(model, rows))
            report[name]["method"] = "the trained model (none of these taught it)"
            continue
        decisions: list = [None] * len(rows)
        groups = near_duplicate_groups([{"title": t.title, "text": t.text} for t in rows])
        for _, test in GroupKFold(folds).split(rows, groups=groups):
            out = {(rows[i].title, rows[i].text) for i in test}
            learn = [(document(t, x), u) for source in training.values() for t, x, u in source if (t, x) not in out]
            fold_model = with_unit_head(model, learn)
            for i, decision in zip(test, decide(fold_model, [rows[i] for i in test]), strict=True):
                decisions[i] = decision
        report[name]["unit_gate"] = figures(rows, decisions)
        report[name]["method"] = f"{folds}-fold cross-validation (these reports taught the unit head)"
    return report
