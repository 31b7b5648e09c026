"""Statistics of the training rows that a network keeps in buffers, computed in one place.

:func:`fit_to_training_data` is called once, after the network is built (and its pretrained
rows loaded) and before training: it sets a bag encoder's per-feature weights (NBSVM's
log-count ratios, or smooth inverse frequency) and the head's standardisation, as the
``net`` spec asks. The values land in the checkpoint's buffers, so nothing here runs again
when a checkpoint is used.
"""

from __future__ import annotations

import numpy as np
import torch

from embedclf.models.classifier import EmbeddingClassifier


def nb_feature_weights(
    ids: np.ndarray, labels: np.ndarray, size: int, alpha: float = 1.0
) -> np.ndarray:
    """NBSVM's log-count ratio of each feature id, ``|r|`` (Wang & Manning 2012), from
    training rows only.

    ``r = log((p / |p|) / (q / |q|))`` where ``p`` (``q``) counts, plus ``alpha``, the
    training reviews of the class (of the other classes) that hold the feature. With more
    than two classes each feature gets its largest one-vs-rest ``|r|``. Padding (id 0) gets 0.
    """
    rows = np.repeat(np.arange(len(ids), dtype=np.int64), ids.shape[1])
    pairs = np.unique(rows * size + ids.reshape(-1).astype(np.int64))  # review, feature once
    row, feature = pairs // size, pairs % size
    classes = np.unique(labels)
    best = np.zeros(size, dtype=np.float64)
    for label in classes[1:] if len(classes) == 2 else classes:
        inside = labels[row] == label
        p = np.bincount(feature[inside], minlength=size) + alpha
        q = np.bincount(feature[~inside], minlength=size) + alpha
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
def set_standardization(net: EmbeddingClassifier, ids: torch.Tensor) -> None:
    """Standardise the encoded vectors with their mean and standard deviation over ``ids``."""
    pooled = torch.cat([net.encode(chunk) for chunk in ids.split(1024)])
    net.feature_mean.copy_(pooled.mean(0))
    net.feature_std.copy_(pooled.std(0) + 1e-6 if len(pooled) > 1 else torch.ones_like(pooled[0]))


def fit_to_training_data(
    net: EmbeddingClassifier, ids: np.ndarray, labels: np.ndarray, counts: np.ndarray
) -> None:
    """Set what ``net``'s spec derives from the training rows ``ids`` (padded, ``(n, maxlen)``)
    and ``labels``; ``counts`` is each feature id's count over the training texts.

    SIF weighs only words that have a vector: the rows of the embedding that are not zero
    (pretrained vectors leave missing words at zero; a learned embedding has none).
    """
    weighting = getattr(net.encoder, "weighting", "none")
    rows = net.embedding.num_embeddings
    if weighting == "nb":
        net.encoder.feature_weight.copy_(torch.from_numpy(nb_feature_weights(ids, labels, rows)))
    elif weighting == "sif":
        known = net.embedding.weight.detach().abs().sum(1).cpu().numpy() > 0
        weights = sif_feature_weights(counts, known, net.encoder.sif_a)
        net.encoder.feature_weight.copy_(torch.from_numpy(weights))
    if net.standardize:
        set_standardization(net, torch.from_numpy(ids))
