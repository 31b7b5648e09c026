"""NBSVM's log-count ratios, computed a batch of rows at a time (models/weighting.py)."""

from __future__ import annotations

import numpy as np

from embedclf.models.weighting import nb_feature_weights
from embedclf.text.ragged import Ragged


def reference(rows: list[list[int]], labels: list[int], size: int, alpha: float = 1.0):
    """|log((p/|p|) / (q/|q|))| by the definition: reviews holding each feature, per class."""
    p, q = np.full(size, alpha), np.full(size, alpha)
    for row, label in zip(rows, labels, strict=True):
        for feature in set(row):
            (p if label == 1 else q)[feature] += 1
    r = np.abs(np.log((p / p.sum()) / (q / q.sum())))
    r[0] = 0
    return r


def as_batch(rows: list[list[int]], labels: list[int]) -> tuple[Ragged, np.ndarray]:
    lengths = [len(r) for r in rows]
    flat = np.array([f for r in rows for f in r], np.int32)
    return Ragged(flat, np.concatenate([[0], np.cumsum(lengths)])), np.array(labels)


def test_nb_weights_count_each_review_once_per_feature_whatever_the_batches():
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(1, 12, size=rng.integers(0, 9))) for _ in range(40)]
    labels = list(rng.integers(0, 2, size=40))
    rows[0] = [3, 3, 3, 3]  # a repeated feature counts once for its review
    expected = reference(rows, labels, 12)
    whole = nb_feature_weights([as_batch(rows, labels)], 12)
    # the same bits as numpy's expression of the definition, not merely close to them
    np.testing.assert_array_equal(whole, expected.astype(np.float32))
    parts = [as_batch(rows[a : a + 7], labels[a : a + 7]) for a in range(0, 40, 7)]
    np.testing.assert_array_equal(nb_feature_weights(parts, 12), whole)
    assert whole[0] == 0


def test_nb_weights_of_several_classes_take_each_features_largest_one_vs_rest_ratio():
    rng = np.random.default_rng(1)
    rows = [list(rng.integers(1, 15, size=rng.integers(1, 10))) for _ in range(60)]
    labels = [int(x) for x in rng.integers(0, 3, size=60)]
    labels[:5] = [2, 2, 2, 2, 2]  # the first batch holds one class: the others come later
    expected = np.zeros(15)
    for label in (0, 1, 2):
        ovr = reference(rows, [int(y == label) for y in labels], 15)
        expected = np.maximum(expected, ovr)
    parts = [as_batch(rows[a : a + 5], labels[a : a + 5]) for a in range(0, 60, 5)]
    np.testing.assert_array_equal(nb_feature_weights(parts, 15), expected.astype(np.float32))


def test_nb_weights_refuse_a_feature_outside_the_table():
    import pytest

    with pytest.raises(IndexError, match=r"\(12\) lies outside the 12 features"):
        nb_feature_weights([as_batch([[1, 12]], [1])], 12)
    # below it too, in a later batch, after rows that counted
    good = as_batch([[1, 2], [3]], [1, 0])
    with pytest.raises(IndexError, match=r"\(-1\) lies outside the 12 features"):
        nb_feature_weights([good, as_batch([[4], [5, -1, 6]], [0, 1])], 12)


def test_nb_weights_refuse_a_smoothing_that_would_divide_by_zero():
    import pytest

    for alpha in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha must be above 0"):
            nb_feature_weights([as_batch([[1, 2]], [1])], 12, alpha=alpha)


def test_nb_weights_refuse_labels_that_do_not_match_the_rows():
    import pytest

    with pytest.raises(ValueError, match="1 labels for 2 rows"):
        nb_feature_weights([(as_batch([[1, 2], [3]], [1, 0])[0], np.array([1]))], 12)
