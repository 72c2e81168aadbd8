"""The n-gram table: every key window inside a document, verified token by token."""

from __future__ import annotations

import numpy as np

from kelm.linking.ngram_table import NgramTable


def test_table_finds_all_windows_within_segments():
    table = NgramTable.build([(1,), (1, 2), (2, 3, 4)], [[10], [11], [12]], [[1.0]] * 3, 5)
    ids = np.array([1, 2, 3, 4, 1, 2, 3, 4], dtype=np.int64)
    segment = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    starts, lengths, keys = table.find(ids, segment)
    found = [
        (int(s), int(n), int(table.nodes[table.indptr[k]]))
        for s, n, k in zip(starts, lengths, keys, strict=True)
    ]
    # (1, 2) across the segment boundary at 4/5 is not a match; overlaps are kept
    assert found == [(0, 1, 10), (0, 2, 11), (1, 3, 12), (4, 1, 10), (5, 3, 12)]


def test_table_unknown_tokens_break_ngrams():
    table = NgramTable.build([(1, 2)], [[7]], [[1.0]], 3)
    starts, _, _ = table.find(np.array([1, -1, 2, 1, 2]), np.zeros(5, dtype=np.int64))
    assert starts.tolist() == [3]


def test_table_verifies_tokens_not_only_hashes():
    table = NgramTable.build([(1, 2)], [[7]], [[1.0]], 3)
    table.tokens[0, 1] = 5  # same hash as (1, 2), different key: must not match any more
    starts, _, _ = table.find(np.array([1, 2]), np.zeros(2, dtype=np.int64))
    assert starts.size == 0


def test_table_empty_inputs():
    table = NgramTable.build([(1,)], [[0]], [[1.0]], 2)
    assert table.find(np.zeros(0, np.int64), np.zeros(0, np.int64))[0].size == 0
    empty = NgramTable.build([], [], [], 2)
    assert empty.find(np.array([1, 2]), np.zeros(2, np.int64))[0].size == 0


def test_key_nodes_flattens():
    table = NgramTable.build([(1,), (2,)], [[4, 5], [6]], [[1.0, 1.0], [1.0]], 2)
    k1 = table.find(np.array([1]), np.zeros(1, np.int64))[2]
    owner, nodes = table.key_nodes(np.concatenate([k1, k1]))
    assert owner.tolist() == [0, 0, 1, 1] and nodes.tolist() == [4, 5, 4, 5]
