"""The batch-vectorised character n-gram features equal the obvious per-document computation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from pipeline.textmodel import CharNgrams

DIM = 1 << 12


def one_by_one(docs: list[str]) -> sparse.csr_matrix:
    """The reference: each document's 1-, 2- and 3-grams hashed on their own."""
    rows, cols = [], []
    for row, doc in enumerate(docs):
        p = np.frombuffer(doc.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        grams = [p]
        if len(p) > 1:
            grams.append(p[:-1] * np.uint64(1_000_003) ^ p[1:] * np.uint64(7919) + np.uint64(1))
        if len(p) > 2:
            grams.append((p[:-2] * np.uint64(1_000_003) ^ p[1:-1] * np.uint64(7919)) * np.uint64(31)
                         ^ p[2:] + np.uint64(2))
        hashed = (np.concatenate(grams) % np.uint64(DIM)).astype(np.int64)
        cols += list(hashed)
        rows += [row] * len(hashed)
    m = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(docs), DIM))
    m.sum_duplicates()
    return m


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("路灯不亮井盖噪音ab\x00 1，"), max_size=12), max_size=8))
def test_the_batch_gives_what_each_document_gives_alone(docs):
    batch = CharNgrams(DIM).transform(docs)
    assert batch.shape == (len(docs), DIM)
    assert (batch != one_by_one(docs)).nnz == 0
