"""Statistics of the training rows that a network keeps in buffers, computed in one place.

:func:`fit_to_training_data` is called once, after the network is built (and its pretrained
rows loaded) and before training: it sets a bag encoder's per-feature weights (NBSVM's
log-count ratios, or smooth inverse frequency) and the head's standardisation, as the
``net`` spec asks. The values land in the checkpoint's buffers, so nothing here runs again
when a checkpoint is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from embedclf.data.batches import Batch, Tokens
from embedclf.models.classifier import EmbeddingClassifier
from embedclf.text.ragged import Ragged


def nb_feature_weights(
    batches: Iterable[tuple[Ragged, np.ndarray]], size: int, alpha: float = 1.0
) -> np.ndarray:
    """NBSVM's log-count ratio of each feature id, ``|r|`` (Wang & Manning 2012), from
    training rows only, given a batch of rows (features, labels) at a time.

    ``r = log((p / |p|) / (q / |q|))`` where ``p`` (``q``) counts, plus ``alpha``, the
    training reviews of the class (of the other classes) that hold the feature. With more
    than two classes each feature gets its largest one-vs-rest ``|r|``. Padding (id 0) gets 0.
    """
    holding: dict[int, np.ndarray] = {}  # class: reviews of it that hold each feature
    for features, labels in batches:
        rows = np.repeat(np.arange(len(features), dtype=np.int64), features.lengths())
        # each (review, feature) once: sorted, then the repeats dropped (numpy's unique hashes
        # int64 here, several times slower than this sort on a batch's 10^6 pairs)
        pairs = np.sort(rows * size + np.asarray(features.flat, dtype=np.int64))
        pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])] if len(pairs) else pairs
        row, feature = pairs // size, pairs % size
        for label in np.unique(labels).tolist():
            found = np.bincount(feature[labels[row] == label], minlength=size)
            holding[label] = holding[label] + found if label in holding else found
    classes = sorted(holding)
    every = sum(holding.values())
    best = np.zeros(size, dtype=np.float64)
    for label in classes[1:] if len(classes) == 2 else classes:
        p = holding[label] + alpha
        q = every - holding[label] + alpha
        best = np.maximum(best, np.abs(np.log((p / p.sum()) / (q / q.sum()))))
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
    """Standardise the encoded vectors with their mean and standard deviation over the rows."""
    pooled = torch.cat([net.encode(batch.tokens) for batch in batches])
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
