"""Statistics of the training rows that a network keeps in buffers, computed in one place.

:func:`fit_to_training_data` is called once, after the network is built (and its pretrained
rows loaded) and before training: it sets a bag encoder's per-feature weights (NBSVM's
log-count ratios, or smooth inverse frequency) and the head's standardisation, as the
``net`` spec asks. The values land in the checkpoint's buffers, so nothing here runs again
when a checkpoint is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numba
import numpy as np
import torch

from embedclf.data.batches import Batch, Tokens
from embedclf.models.classifier import EmbeddingClassifier
from embedclf.text.ragged import Ragged


@numba.njit(cache=True, nogil=True)
def _count_holding(flat, offsets, row_class, first_row, last_row, holding):  # pragma: no cover
    # each row adds 1 to its class's count of each feature it holds, once however often the
    # feature repeats in it: last_row remembers the last row that counted each feature.
    # Returns the position in flat of the first id outside the table (nothing counted from
    # it on), or -1: the check rides along instead of two more passes over flat
    size = last_row.shape[0]
    for r in range(offsets.shape[0] - 1):
        row, c = first_row + r, row_class[r]
        for i in range(offsets[r], offsets[r + 1]):
            feature = flat[i]
            if feature < 0 or feature >= size:
                return i
            if last_row[feature] != row:
                last_row[feature] = row
                holding[c, feature] += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _shares_ratio(holding, k, every, alpha, p_total, q_total, out):  # pragma: no cover
    # out[f] = (p[f] / |p|) / (q[f] / |q|) with p = holding[k] + alpha and q the other
    # classes' counts (every, all classes' counts, less class k's) + alpha: the operations
    # numpy's expression does, in its order, element by element (so the same doubles), in one
    # pass with no array made per operation
    for f in range(out.shape[0]):
        p = holding[k, f] + alpha
        q = (every[f] - holding[k, f]) + alpha
        out[f] = (p / p_total) / (q / q_total)


def nb_feature_weights(
    batches: Iterable[tuple[Ragged, np.ndarray]], size: int, alpha: float = 1.0
) -> np.ndarray:
    """NBSVM's log-count ratio of each feature id, ``|r|`` (Wang & Manning 2012), from
    training rows only, given a batch of rows (features, labels) at a time.

    ``r = log((p / |p|) / (q / |q|))`` where ``p`` (``q``) counts, plus ``alpha``, the
    training reviews of the class (of the other classes) that hold the feature. With more
    than two classes each feature gets its largest one-vs-rest ``|r|``. Padding (id 0) gets 0.
    """
    if not alpha > 0:  # the ratios' smoothing: a zero count would divide by zero
        raise ValueError(f"alpha must be above 0, got {alpha}")
    index: dict = {}  # each label's row of `holding`, in order of first appearance
    # per class: its reviews holding each feature. 32-bit counts and rows: the loop reads and
    # writes these at random, and half the bytes took half the time (IMDB's 2.2M features)
    holding = np.zeros((0, size), dtype=np.int32)
    last_row = np.full(size, -1, dtype=np.int32)
    first_row = 0
    for features, labels in batches:
        if len(labels) != len(features):  # the loop reads a class per row
            raise ValueError(f"{len(labels)} labels for {len(features)} rows")
        if first_row + len(features) > np.iinfo(np.int32).max:
            raise ValueError(f"over {np.iinfo(np.int32).max:,} rows: their counts overflow")
        new = sorted(set(np.unique(labels).tolist()) - index.keys())
        if new:  # a class seen for the first time (at most once per class)
            index.update(zip(new, range(len(index), len(index) + len(new)), strict=True))
            holding = np.concatenate([holding, np.zeros((len(new), size), np.int32)])
        row_class = np.array([index[label] for label in labels.tolist()], dtype=np.int64)
        flat = np.asarray(features.flat)
        bad = _count_holding(flat, features.offsets, row_class, first_row, last_row, holding)
        if bad >= 0:
            raise IndexError(f"a feature id ({flat[bad]}) lies outside the {size} features")
        first_row += len(features)
    classes = sorted(index)
    counts = holding.sum(1, dtype=np.int64)  # per class: its reviews' feature counts, summed
    total = int(counts.sum())
    every = holding.sum(0, dtype=np.int64)  # per feature: the reviews of any class holding it
    best = np.zeros(size, dtype=np.float64)
    ratio = np.empty(size, dtype=np.float64)
    for label in classes[1:] if len(classes) == 2 else classes:
        k = index[label]
        # |p| and |q| as numpy's sums of p and q give them: sums of whole numbers (counts
        # plus alpha 1) are exact in any order
        p_total = float(counts[k]) + alpha * size
        q_total = float(total - counts[k]) + alpha * size
        _shares_ratio(holding, k, every, alpha, p_total, q_total, ratio)
        np.log(ratio, out=ratio)  # numpy's log, as before: the same bits
        np.abs(ratio, out=ratio)
        np.maximum(best, ratio, out=best)
    best[0] = 0.0
    return best.astype(np.float32)


def sif_feature_weights(counts: np.ndarray, known: np.ndarray, a: float) -> np.ndarray:
    """Smooth inverse frequency weights ``a / (a + p(w))`` (Arora et al. 2017), ``p`` the
    word's share of ``counts``; 0 for padding and for words without a vector.

    The pipeline passes the token cache's counts, over every training text of the dataset:
    the vocabulary's statistics, which use no label (the validation reviews' texts included,
    as the vocabulary itself does), not only the few labelled training reviews.
    """
    share = counts / max(float(counts.sum()), 1.0)
    weights = a / (a + share) * known
    weights[0] = 0.0
    return weights.astype(np.float32)


@torch.no_grad()
def set_standardization(net: EmbeddingClassifier, batches: Iterable[Batch]) -> None:
    """Standardise the encoded vectors with their mean and standard deviation over the rows,
    encoded as scoring encodes them: every word read, no dropout."""
    training = net.training
    net.eval()
    try:
        pooled = torch.cat([net.encode(batch.tokens) for batch in batches])
    finally:
        net.train(training)
    net.feature_mean.copy_(pooled.mean(0))
    net.feature_std.copy_(pooled.std(0) + 1e-6 if len(pooled) > 1 else torch.ones_like(pooled[0]))


def fit_to_training_data(
    net: EmbeddingClassifier, batches: Callable[[], Iterable[Batch]], counts: np.ndarray
) -> None:
    """Set what ``net``'s spec derives from the training rows, which ``batches()`` yields a
    batch at a time (each pass over them a fresh call); ``counts`` is each feature id's count
    over the training texts.

    SIF weighs only words that have a vector: the rows of the embedding that are not zero
    (pretrained vectors leave missing words at zero; a learned embedding has none).
    """
    weighting = getattr(net.encoder, "weighting", "none")
    rows = net.embedding.num_embeddings
    if weighting == "nb":
        pairs = ((ragged_of(b.tokens), b.labels.numpy()) for b in batches())
        net.encoder.feature_weight.copy_(torch.from_numpy(nb_feature_weights(pairs, rows)))
    elif weighting == "sif":
        known = net.embedding.weight.detach().abs().sum(1).cpu().numpy() > 0
        weights = sif_feature_weights(counts, known, net.encoder.sif_a)
        net.encoder.feature_weight.copy_(torch.from_numpy(weights))
    if net.standardize:
        set_standardization(net, batches())


def ragged_of(tokens: Tokens) -> Ragged:
    return Ragged(tokens.flat.numpy(), tokens.offsets.numpy())
