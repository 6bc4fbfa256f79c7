"""The trained text model: a report's title and text → its top-level class, with a probability.

Character 1–3-grams and words, TF-IDF, a linear SVM calibrated to probabilities. Both feature
sets are computed at C speed (numpy over the code points of a whole batch; one Aho-Corasick pass
for the words jieba found in the training texts): the same accuracy as scikit-learn's analyzers with jieba at
prediction time, about five times faster (BENCHMARKS.md). It learns
from the real labelled citizen messages plus *lexicon documents*: the government taxonomy's
second- and third-level names and the duty list's item titles, keywords and examples, each a
short document labelled with its top-level class. With ~300 labelled messages the lexicon is
what lifts cross-validated accuracy from ≈0.74 to ≈0.80 (BENCHMARKS.md).

Pure: data in, model out. Reading files and writing the artefact is the CLI's business.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import pickle
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import ahocorasick_rs
import jieba
import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.svm import LinearSVC

from schemas import DutyList

log = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)
ARTEFACT = "model.pkl"
UNIT_ARTEFACT = "units.pkl"
# The unit head's label for "no item of the duty list fits" (a court's ruling, party dues, thanks).
NO_ITEM = "(no item)"
# Part of every model's version: a change of features or learner is a new model even on the same data.
MODEL_KIND = "charhash1-3+lexiconwords-df2/tfidf/linearsvc-c2-balanced-sigmoid/outside+unithead-c1/pick-confidence"
# The label of "a class the labelled messages do not cover", learnt from the lexicon of those classes.
OUTSIDE = "(outside)"


def document(title: str, text: str) -> str:
    # The title is the citizen's own summary: count it twice.
    return f"{title} {title} {text}"


def words(text: str) -> list[str]:
    """jieba words of two characters or more (single characters are the char n-grams' job)."""
    return [w for w in jieba.lcut(text) if len(w) > 1]


def lexicon_documents(taxonomy: Iterable[Sequence[str]], dutylist: DutyList, classes: set[str]) -> list[tuple[str, str]]:
    """Short labelled documents from the taxonomy rows (level1, level2, level3) and the duty items.
    Those of a class no labelled message has (民政, 政法, 党务政务…) are labelled OUTSIDE: the model
    learns what lies beyond its classes instead of forcing such a message into one of them."""
    docs = [(f"{row[1]} {row[2]}", row[0] if row[0] in classes else OUTSIDE) for row in taxonomy]
    docs += [(" ".join([item.title, *item.keywords, *item.examples]),
              item.top_class if item.top_class in classes else OUTSIDE) for item in dutylist.items]
    return docs


def _joined(docs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch as one array of code points, which document each position is in, and whether it
    is inside a document (not the joint between two)."""
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    points = np.frombuffer("\x00".join(docs).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    inside = np.ones(len(points), dtype=bool)
    inside[np.cumsum(lengths + 1)[:-1] - 1] = False
    row_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths + 1)[:len(points)]
    return points, row_of, inside


class CharNgrams(BaseEstimator, TransformerMixin):
    """Counts of character 1-, 2- and 3-grams, hashed into `dim` columns, computed with numpy.

    scikit-learn's char analyzer builds every n-gram as a Python string (≈2,400 texts/s here);
    hashing code-point arrays does the same job without leaving C."""

    def __init__(self, dim: int = 1 << 20):
        self.dim = dim

    def fit(self, docs, y=None):
        return self

    def transform(self, docs):
        """One set of numpy operations for the whole batch, not one per document: the documents are
        joined, and an n-gram is kept only if none of its characters is a joint."""
        docs = list(docs)
        if not docs:
            return sparse.csr_matrix((0, self.dim))
        points, row_of, inside = _joined(docs)
        grams, rows = [points[inside]], [row_of[inside]]
        if len(points) > 1:
            keep = inside[:-1] & inside[1:]
            grams.append((points[:-1] * np.uint64(1_000_003) ^ points[1:] * np.uint64(7919) + np.uint64(1))[keep])
            rows.append(row_of[:-1][keep])
        if len(points) > 2:
            keep = inside[:-2] & inside[1:-1] & inside[2:]
            grams.append(((points[:-2] * np.uint64(1_000_003) ^ points[1:-1] * np.uint64(7919)) * np.uint64(31)
                          ^ points[2:] + np.uint64(2))[keep])
            rows.append(row_of[:-2][keep])
        return _count_matrix(np.concatenate(rows), np.concatenate(grams) % np.uint64(self.dim), len(docs), self.dim)


def _count_matrix(rows: np.ndarray, columns: np.ndarray, n_rows: int, width: int) -> sparse.csr_matrix:
    """The CSR matrix counting each (row, column) pair. One sort of row·width + column keys both
    orders each row's columns and brings duplicates together to be counted: cheaper than scipy's
    COO → CSR, per-row sort and duplicate sum. int32 keys when they fit (a batch of up to 2,047
    documents of the n-grams' width): half the bytes, half the sort."""
    key_type = np.int32 if n_rows * width < 2**31 else np.int64
    keys = rows.astype(key_type) * key_type(width) + columns.astype(key_type)
    keys.sort()
    firsts = np.flatnonzero(np.diff(keys, prepend=-1))  # where each distinct key starts
    unique = keys[firsts]
    counts = np.diff(np.append(firsts, len(keys))).astype(np.float64)
    indptr = np.searchsorted(unique // width, np.arange(n_rows + 1))
    matrix = sparse.csr_matrix((counts, unique % width, indptr), shape=(n_rows, width))
    matrix.has_sorted_indices = True
    return matrix


class LexiconWords(BaseEstimator, TransformerMixin):
    """Counts of the words jieba finds in the training texts, found in new text by Aho-Corasick.

    Segmenting every incoming text with jieba costs ≈0.8 ms; matching a fixed vocabulary in one
    pass gives the same accuracy (overlapping matches included) for a fraction of it. The
    automaton is ahocorasick-rs (Rust): ≈20 µs a message where pyahocorasick's iterator took ≈80."""

    def __init__(self, min_df: int = 2):
        self.min_df = min_df

    def fit(self, docs, y=None):
        # A word in one training text only (a name, an estate, a typo) is noise to the SVM and a cost to
        # every prediction: with 7,000 messages it is most of the vocabulary.
        frequency = Counter(w for d in docs for w in set(words(d)))
        self.vocabulary_ = {w: i for i, w in enumerate(sorted(w for w, n in frequency.items() if n >= self.min_df))}
        self._build()
        return self

    def _build(self) -> None:
        # Patterns in column order, so a match's pattern index is its column.
        patterns = sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)
        self.automaton_ = ahocorasick_rs.AhoCorasick(patterns, matchkind=ahocorasick_rs.MatchKind.Standard)

    def transform(self, docs):
        found = self.automaton_.find_matches_as_indexes
        # Overlapping: every occurrence of every word counts, as jieba's words would in any segmentation.
        matches = [[index for index, _, _ in found(doc, overlapping=True)] for doc in docs]  # comprehensions: the fast loop
        lengths = np.fromiter(map(len, matches), dtype=np.int64, count=len(matches))
        cols = np.fromiter(itertools.chain.from_iterable(matches), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(matches), dtype=np.int64), lengths)
        return _count_matrix(rows, cols, len(matches), len(self.vocabulary_))

    def __getstate__(self):  # the automaton is rebuilt from the vocabulary on load
        return {k: v for k, v in self.__dict__.items() if k != "automaton_"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        if "vocabulary_" in state:
            self._build()


def _pipeline(seed: int = 0) -> Pipeline:
    features = make_union(
        make_pipeline(CharNgrams(), TfidfTransformer(sublinear_tf=True)),
        make_pipeline(LexiconWords(), TfidfTransformer(sublinear_tf=True)),
    )
    # Calibrated on internal folds, so predict_proba is a probability the threshold can mean. C=2 and
    # balanced class weights: on 7,000 messages the best of C 0.5/1/2/4, with and without (BENCHMARKS.md).
    svm = CalibratedClassifierCV(LinearSVC(C=2.0, class_weight="balanced", random_state=seed), cv=3,
                                 method="sigmoid")
    return Pipeline([("features", features), ("svm", svm)])


class StackedCalibratedSVMs:
    """`CalibratedClassifierCV(LinearSVC, method="sigmoid").predict_proba`, with the fold SVMs'
    weights side by side in one matrix: one sparse product reads each feature's weights for every
    fold and class together instead of once per fold — the weights are 1M features wide, so that
    product was the slowest step of a prediction. The same figures as scikit-learn's to 1e-6 (tested)."""

    def __init__(self, calibrated: CalibratedClassifierCV):
        folds = calibrated.calibrated_classifiers_
        n_classes = len(calibrated.classes_)
        self.n_folds = len(folds)
        # float32: the matrix is a million features wide, and half the bytes to read per product is
        # half the cache misses; probabilities move by < 1e-6 (tested), far below any threshold.
        # Filled fold by fold: no float64 copy twice its size first (an hstack, then a cast).
        n_columns = folds[0].estimator.coef_.shape[0]
        self.weights = np.empty((folds[0].estimator.coef_.shape[1], n_columns * self.n_folds), dtype=np.float32)
        for k, f in enumerate(folds):
            self.weights[:, k * n_columns:(k + 1) * n_columns] = f.estimator.coef_.T
        self.bias = np.concatenate([f.estimator.intercept_ for f in folds])
        self.columns = []  # per fold: where its decision columns go among the classes, and the sigmoid a, b
        for f in folds:
            position = np.searchsorted(f.classes, f.estimator.classes_)
            self.columns.append((position, np.array([c.a_ for c in f.calibrators]),
                                 np.array([c.b_ for c in f.calibrators])))
        self.n_classes = n_classes
        if n_classes < 3 or calibrated.method != "sigmoid":
            raise ValueError("stacked prediction covers sigmoid calibration of three or more classes")

    def probabilities(self, products: np.ndarray) -> np.ndarray:
        """The calibrated class probabilities from the features' products with `weights` (no bias):
        `TopClassModel._by_class` computes those block by block."""
        decisions = products + self.bias
        width = decisions.shape[1] // self.n_folds
        mean = np.zeros((decisions.shape[0], self.n_classes))
        for k, (position, a, b) in enumerate(self.columns):
            proba = np.zeros_like(mean)
            proba[:, position] = expit(-(a * decisions[:, k * width:(k + 1) * width] + b))
            total = proba.sum(axis=1, keepdims=True)
            proba = np.divide(proba, total, out=np.full_like(proba, 1 / self.n_classes), where=total != 0)
            proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
            mean += proba
        return mean / self.n_folds


class UnitHead:
    """Which unit a report is for, and how likely that unit is right.

    A linear SVM on the top-class model's own features (computed once for both), trained on reports
    whose right unit is known, picks the unit. Its confidence is learnt apart, out of fold: a logistic
    regression on what the SVM's pick looks like — its score, its lead over the runner-up, and how many
    reports of that unit the SVM learnt from — fitted to whether such picks were right. That gives a
    unit with a few dozen reports (the units a city's rulings have just taught) a confidence its clear
    texts earn: per-unit sigmoid calibration, before, squeezed 34 units' probabilities so that such a
    unit stayed below 0.75 however clear the text, and its reports waited (BENCHMARKS.md, "Learning
    from rulings and returns"). It learns from about 1,100 reports, which touch a quarter of the million
    hashed features: only those columns are kept (a weight the training never touched is zero), 35 MB
    of weights for 34 units where a full-width copy would take 140 MB."""

    # Out-of-fold picks the confidence learns from; folds keep a report and its near-twins together.
    FOLDS = 5

    def __init__(self, columns: np.ndarray, units: list[str], weights: np.ndarray, bias: np.ndarray,
                 support: dict[str, int], confidence: np.ndarray, width: int):
        self.columns = columns  # the global feature columns the head reads, ascending
        self.compact = np.full(width, -1, dtype=np.int64)
        self.compact[columns] = np.arange(len(columns))
        self.units = units
        # A column per unit, float32: one sparse product reads every unit's weights of a feature together.
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.bias = bias
        self.support = support  # how many reports of each unit the SVM learnt from
        self.confidence = confidence  # the logistic's weights of _pick_features' three columns, then its intercept
        self.log_support = np.log1p(np.array([support.get(u, 0) for u in units], dtype=np.float64))

    @classmethod
    def fit(cls, features: sparse.csr_matrix, units: Sequence[str], *, groups: Sequence[int] | None = None,
            seed: int = 0) -> UnitHead:
        """`groups`: near-duplicates share a number, and a fold holds all of a group or none of it (else a
        report's twin would vouch for its pick); default: every report its own."""
        columns = np.unique(features.indices)
        compact = features[:, columns]
        labels = np.array(units)
        groups = np.arange(len(labels)) if groups is None else np.asarray(groups)
        picks, right = [], []
        folds = min(cls.FOLDS, len(np.unique(groups)))
        for learn, held_out in (GroupKFold(folds).split(compact, labels, groups) if folds > 1 else ()):
            if len(np.unique(labels[learn])) < 2:
                continue  # nothing to choose between
            fold_svm = LinearSVC(C=1.0, random_state=seed).fit(compact[learn], labels[learn])
            weights, bias = _unit_weights(fold_svm)
            scores = np.asarray(compact[held_out] @ weights.T) + bias
            picked = fold_svm.classes_[scores.argmax(axis=1)]
            support = Counter(labels[learn].tolist())
            picks.append(_pick_features(scores, np.log1p([support[u] for u in picked])))
            right.append(picked == labels[held_out])
        svm = LinearSVC(C=1.0, random_state=seed).fit(compact, labels)
        weights, bias = _unit_weights(svm)
        return cls(columns, [str(u) for u in svm.classes_], weights.T, bias, dict(Counter(units)),
                   _confidence_weights(picks, right), features.shape[1])

    def decide(self, features: sparse.csr_matrix) -> list[tuple[str, float]]:
        """Each row's unit and the probability that it is right, from the full-width features."""
        mapped = self.compact[features.indices]
        keep = mapped >= 0
        rows = np.repeat(np.arange(features.shape[0]), np.diff(features.indptr))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[keep], minlength=features.shape[0]))])
        compact = sparse.csr_matrix((features.data[keep].astype(np.float32), mapped[keep], indptr),
                                    shape=(features.shape[0], len(self.columns)))
        scores = np.asarray(compact @ self.weights, dtype=np.float64) + self.bias
        best = scores.argmax(axis=1)
        probability = expit(_pick_features(scores, self.log_support[best]) @ self.confidence[:3] + self.confidence[3])
        return [(self.units[b], p) for b, p in zip(best.tolist(), probability.tolist(), strict=True)]

    def __getstate__(self):  # the column lookup is rebuilt on load
        return {"columns": self.columns, "units": self.units, "weights": self.weights, "bias": self.bias,
                "support": self.support, "confidence": self.confidence, "width": len(self.compact)}

    def __setstate__(self, state):
        self.__init__(**state)


def _unit_weights(svm: LinearSVC) -> tuple[np.ndarray, np.ndarray]:
    """A unit's row of weights and its bias, for every unit: a two-unit SVM keeps one row (the second
    unit's), which is the first unit's negated."""
    if len(svm.classes_) == 2:
        return np.vstack([-svm.coef_, svm.coef_]), np.concatenate([-svm.intercept_, svm.intercept_])
    return svm.coef_, svm.intercept_


def _confidence_weights(picks: list[np.ndarray], right: list[np.ndarray]) -> np.ndarray:
    """The logistic regression of a pick's rightness on its features, as three weights and an intercept.
    Picks that were all right or all wrong (a handful of reports) give a constant: the share right, with
    one right and one wrong pick added so that neither 0 nor 1 is said of a few."""
    features = np.vstack(picks) if picks else np.empty((0, 3))
    outcome = np.concatenate(right) if right else np.empty(0, dtype=bool)
    if len(np.unique(outcome)) < 2:
        share = (outcome.sum() + 1) / (len(outcome) + 2)
        return np.array([0.0, 0.0, 0.0, np.log(share / (1 - share))])
    fitted = LogisticRegression().fit(features, outcome)
    return np.concatenate([fitted.coef_[0], fitted.intercept_])


def _pick_features(scores: np.ndarray, log_support: np.ndarray) -> np.ndarray:
    """What the confidence reads of each row's pick: its SVM score, its lead over the runner-up, and the
    log of how many reports of the picked unit the SVM learnt from."""
    top_two = -np.partition(-scores, 1, axis=1)[:, :2]
    return np.column_stack([top_two[:, 0], top_two[:, 0] - top_two[:, 1], log_support])


@dataclass
class TopClassModel:
    pipeline: Pipeline
    version: str
    meta: dict = field(default_factory=dict)
    units: UnitHead | None = None  # which unit: trained where reports with a known unit exist

    def __post_init__(self) -> None:
        # Now, not at the first prediction: the stacked weights are a first touch of 80 MB (a second
        # or more on a small VM), which the first report a worker classified used to wait for.
        self._calibrated_svms = StackedCalibratedSVMs(self.pipeline.named_steps["svm"])

    @cached_property
    def trained_fingerprints(self) -> frozenset[str]:
        return frozenset(self.meta.get("training_titles_sha256", []))

    @property
    def classes(self) -> list[str]:
        return list(self.pipeline.classes_)

    def predict(self, docs: Sequence[str]) -> list[dict[str, float]]:
        """For each document, the probability of each class (the unit head is not asked)."""
        return self._by_class(self._feature_blocks(list(docs)))

    def predict_with_units(self, docs: Sequence[str]) -> tuple[list[dict[str, float]], list[dict[str, float]] | None]:
        """For each document, the probability of each class, and the unit the head picks with the probability
        that it is right, as {unit: probability} (None: no unit head)."""
        blocks = self._feature_blocks(list(docs))
        by_class = self._by_class(blocks)
        if self.units is None:
            return by_class, None
        picks = self.units.decide(sparse.hstack(blocks, format="csr"))
        return by_class, [{unit: probability} for unit, probability in picks]

    def _by_class(self, blocks: list[sparse.csr_matrix]) -> list[dict[str, float]]:
        """The class probabilities from the feature blocks, each times its own rows of the weights."""
        weights, products, first = self._calibrated_svms.weights, None, 0
        for matrix in blocks:
            width = matrix.shape[1]
            block_products = np.asarray(matrix.astype(np.float32) @ weights[first:first + width], dtype=np.float64)
            products = block_products if products is None else products + block_products
            first += width
        classes = self.classes
        return [dict(zip(classes, row, strict=True)) for row in self._calibrated_svms.probabilities(products).tolist()]

    def features(self, docs: Sequence[str]) -> sparse.csr_matrix:
        """The documents' TF-IDF features, every block side by side (what the unit head reads)."""
        return sparse.hstack(self._feature_blocks(list(docs)), format="csr")

    def _feature_blocks(self, docs: list[str]) -> list[sparse.csr_matrix]:
        """The pipeline's features, block by block: each feature set's counts, TF-IDF in place (what its
        fitted TfidfTransformer does) — scikit-learn's FeatureUnion would validate, copy and stack the
        blocks first, a tenth of a prediction's time for the same figures (tested against predict_proba)."""
        blocks = []
        for _, block in self.pipeline.named_steps["features"].transformer_list:
            counts, tfidf = (step for _, step in block.steps)
            if tfidf.norm != "l2":
                raise ValueError(f"fused prediction covers l2-normalised TF-IDF, not norm={tfidf.norm!r}")
            matrix = counts.transform(docs)
            matrix.data = (np.log(matrix.data) + 1.0) * tfidf.idf_[matrix.indices] if tfidf.sublinear_tf \
                else matrix.data * tfidf.idf_[matrix.indices]
            lengths = np.diff(matrix.indptr)
            norms = np.sqrt(np.bincount(np.repeat(np.arange(len(docs)), lengths), weights=matrix.data ** 2,
                                        minlength=len(docs)))
            matrix.data /= np.repeat(norms, lengths)  # an empty row repeats nothing: no division by 0
            blocks.append(matrix)
        return blocks

    def save(self, directory: Path) -> Path:
        target = directory / f"topclass-{self.version}"
        target.mkdir(parents=True, exist_ok=True)
        with open(target / ARTEFACT, "wb") as f:
            pickle.dump(self.pipeline, f)
        if self.units is not None:
            with open(target / UNIT_ARTEFACT, "wb") as f:
                pickle.dump(self.units, f)
        (target / "meta.json").write_text(json.dumps({"version": self.version, **self.meta}, ensure_ascii=False,
                                                     indent=2), encoding="utf-8")
        (directory / "CURRENT").write_text(target.name + "\n", encoding="utf-8")
        return target

    def class_gate(self) -> TopClassModel:
        """The same model without its unit head: it gates on the class (the decision before the head)."""
        return TopClassModel(self.pipeline, self.version, self.meta, None)

    @classmethod
    def load(cls, directory: Path) -> TopClassModel | None:
        """The model CURRENT names in `directory`, or None when none has been trained there — or
        when it was trained by other code (another MODEL_KIND): its features would not match."""
        current = directory / "CURRENT"
        if not current.exists():
            return None
        return cls.load_folder(directory / current.read_text(encoding="utf-8").strip())

    @staticmethod
    def meta_of(target: Path) -> dict | None:
        """What a saved model's folder says of it (version, kind, training), without loading it; None: no model there."""
        meta = target / "meta.json"
        return json.loads(meta.read_text(encoding="utf-8")) if meta.exists() else None

    @classmethod
    def load_folder(cls, target: Path) -> TopClassModel | None:
        """The model saved in `target` (a folder of the model directory), whole; None when it was trained
        by other code (another MODEL_KIND). A missing folder raises FileNotFoundError."""
        meta = TopClassModel.meta_of(target)
        if meta is None:
            raise FileNotFoundError(target / "meta.json")
        if meta.get("kind") != MODEL_KIND:
            log.warning("model %s in %s is of kind %r, this code needs %r: retrain it (`cityops model train`)",
                        meta.get("version", target.name), target.parent, meta.get("kind"), MODEL_KIND)
            return None
        with open(target / ARTEFACT, "rb") as f:
            pipeline = pickle.load(f)  # our own artefact, written by `cityops model train`
        units = None
        if (target / UNIT_ARTEFACT).exists():
            with open(target / UNIT_ARTEFACT, "rb") as f:
                units = pickle.load(f)
        return cls(pipeline, meta["version"], meta, units)


def train(rows: Sequence[dict], lexicon: Sequence[tuple[str, str]], *, trained_at: str) -> TopClassModel:
    """Fit on labelled rows (`title`, `text`, `label`) plus lexicon documents."""
    docs = [document(r["title"], r["text"]) for r in rows] + [d for d, _ in lexicon]
    labels = [r["label"] for r in rows] + [label for _, label in lexicon]
    pipeline = _pipeline()
    pipeline.fit(docs, labels)
    digest = hashlib.sha256(json.dumps([MODEL_KIND, docs, labels], ensure_ascii=False).encode()).hexdigest()[:10]
    version = f"{trained_at[:10].replace('-', '')}-{digest}"
    meta = {"kind": MODEL_KIND, "trained_at": trained_at, "labelled_rows": len(rows), "lexicon_documents": len(lexicon),
            "classes": sorted(set(labels)), "training_titles_sha256": sorted(_title_hashes(rows))}
    return TopClassModel(pipeline, version, meta)


def _fingerprint(row: dict) -> str:
    return hashlib.sha256((row["title"] + row["text"]).encode()).hexdigest()[:16]


def _title_hashes(rows: Iterable[dict]) -> set[str]:
    return {_fingerprint(r) for r in rows}


def trained_on(model: TopClassModel, row: dict) -> bool:
    """Whether the model saw this labelled row in training."""
    return _fingerprint(row) in model.trained_fingerprints


def seen_in_training(model: TopClassModel, rows: Iterable[dict]) -> int:
    """How many of `rows` the model was trained on (an evaluation on them flatters it)."""
    return sum(trained_on(model, r) for r in rows)


def scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict:
    """`n`, `accuracy`, `macro_f1` and per-class precision/recall/F1/support."""
    classes = sorted(set(y_true) | set(y_pred))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0)), 4),
        "per_class": {c: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4),
                          "n": int(s)} for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)},
    }


def coverage_curve(y_true: Sequence[str], y_pred: Sequence[str], confidence: Sequence[float],
                   thresholds: Sequence[float]) -> list[dict]:
    """For each threshold: the share of messages at or above it (sent automatically) and their accuracy."""
    y_true, y_pred, confidence = np.array(y_true), np.array(y_pred), np.array(confidence)
    curve = []
    for t in thresholds:
        kept = confidence >= t
        curve.append({"threshold": t, "coverage": round(float(kept.mean()), 4),
                      "accuracy": round(float((y_true[kept] == y_pred[kept]).mean()), 4) if kept.any() else None})
    return curve


def near_duplicate_groups(rows: Sequence[dict]) -> list[int]:
    """A group number per row: rows sharing a normalised title or the same text are one group (the
    labelled files hold some messages twice, under other pseudonyms), so cross-validation never
    tests a message on a fold that trained on its twin."""
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_with: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        for key in (("title", _normalised(row["title"])), ("text", _normalised(row["text"]))):
            if len(key[1]) < 4:  # an empty or one-word field says nothing about sameness
                continue
            if key in first_with:
                parent[root(i)] = root(first_with[key])
            else:
                first_with[key] = i
    return [root(i) for i in range(len(rows))]


def _normalised(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def held_out_split(rows: Sequence[dict], *, folds: int = 5, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """One fold of `cross_validate`'s splits: (the rows to train on, the rows held out)."""
    y = np.array([r["label"] for r in rows])
    train_idx, test_idx = next(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(
        np.zeros(len(y)), y, groups=near_duplicate_groups(rows)))
    return [rows[i] for i in train_idx], [rows[i] for i in test_idx]


def cross_validate(rows: Sequence[dict], lexicon: Sequence[tuple[str, str]], *, folds: int = 5,
                   seed: int = 0) -> tuple[list[str], list[str], list[float]]:
    """Out-of-fold predictions for every labelled row, near-duplicates kept on one side of each
    split (`near_duplicate_groups`): the lexicon always trains, never tests."""
    y = np.array([r["label"] for r in rows])
    predicted = np.empty(len(rows), dtype=object)
    confidence = np.zeros(len(rows))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    for train_idx, test_idx in splitter.split(np.zeros(len(y)), y, groups=near_duplicate_groups(rows)):
        model = train([rows[i] for i in train_idx], lexicon, trained_at="cv")
        for i, proba in zip(test_idx, model.predict([document(rows[i]["title"], rows[i]["text"]) for i in test_idx]),
                            strict=True):
            predicted[i] = max(proba, key=proba.get)
            confidence[i] = proba[predicted[i]]
    return list(y), list(predicted), list(confidence)


def with_unit_head(model: TopClassModel, rows: Sequence[tuple[str, str]], *, note: dict | None = None,
                   seed: int = 0) -> TopClassModel:
    """`model` with a unit head trained on (document, unit) rows, on the model's own features: a new
    version (the rows are part of what it learnt)."""
    docs, units = [d for d, _ in rows], [u for _, u in rows]
    groups = near_duplicate_groups([{"title": d, "text": d} for d in docs])
    head = UnitHead.fit(model.features(docs), units, groups=groups, seed=seed)
    digest = hashlib.sha256(json.dumps([model.version, docs, units], ensure_ascii=False).encode()).hexdigest()[:10]
    version = f"{model.version.split('-')[0]}-{digest}"
    meta = {**model.meta, "version": version, "unit_rows": len(rows), "units": head.units, **(note or {})}
    return TopClassModel(model.pipeline, version, meta, head)
