"""The lexicon-word features count every occurrence of every vocabulary word, overlaps included."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from pipeline.textmodel import LexiconWords

TRAINING = ["小区物业乱收停车费", "路灯不亮晚上出行不安全", "噪音扰民严重影响休息", "井盖缺失存在安全隐患",
            "公积金提取手续复杂", "学位紧张孩子入学难"]
MODEL = LexiconWords(min_df=1).fit(TRAINING)  # every word once: none would reach the default min_df of 2


def every_occurrence(model: LexiconWords, docs: list[str]) -> sparse.csr_matrix:
    """The reference: every start position, every vocabulary word that starts there."""
    rows, cols = [], []
    for row, doc in enumerate(docs):
        for start in range(len(doc)):
            for word, index in model.vocabulary_.items():
                if doc.startswith(word, start):
                    rows.append(row)
                    cols.append(index)
    m = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(docs), len(model.vocabulary_)))
    m.sum_duplicates()
    return m


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("小区物业乱收停车费路灯不亮噪音扰民井盖公积金学位\x00 "), max_size=30),
                max_size=6))
def test_every_occurrence_is_counted(docs):
    assert MODEL.vocabulary_  # jieba found words in the training texts
    assert (MODEL.transform(docs) != every_occurrence(MODEL, docs)).nnz == 0


def test_words_of_a_single_training_text_are_left_out():
    model = LexiconWords().fit(["小区物业乱收停车费", "物业不作为", "路灯不亮"])
    assert set(model.vocabulary_) == {"物业"}


def test_real_messages(shared_data):
    rows = [json.loads(line) for line in (shared_data / "zh-gov-messages" / "labelled.jsonl").open(encoding="utf-8")]
    model = LexiconWords().fit([r["text"] for r in rows[:150]])
    docs = [r["title"] + r["text"] for r in rows[150:170]]
    found = model.transform(docs)
    assert found.nnz > 10 * len(docs) and (found != every_occurrence(model, docs)).nnz == 0
