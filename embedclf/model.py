"""The network: an embedding, pooled or flattened, then a small dense head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

POOLINGS = ("flatten", "mean", "bag", "weighted_mean")
BAGS = ("bag", "weighted_mean")  # pooled by an nn.EmbeddingBag with per-feature weights


class EmbeddingClassifier(nn.Module):
    """``Embedding -> flatten | mean | weighted bag -> [Dense + ReLU]* -> Dense``: logits.

    ``pooling="flatten"`` is the seed's: one weight per position and dimension, so word order
    matters and ``seq_len`` is fixed. ``pooling="mean"`` averages the vectors of the real
    (non-padding, id 0) words: a bag of embeddings, whose size does not grow with ``seq_len``.
    ``pooling="bag"`` is fastText's: an ``nn.EmbeddingBag`` summing the features' vectors
    (words and hashed n-grams), each weighted by ``feature_weight[id]`` over the review's
    feature count (so a mean when the weights are 1; NBSVM's log-count ratios otherwise, see
    :func:`nb_feature_weights`), with sparse gradients when ``sparse``; its embedding starts
    uniform in +-1/dim and its head at zero, as fastText's. ``pooling="weighted_mean"``
    divides the same weighted sum by the sum of the weights instead (smooth inverse frequency
    weights, say; words without a vector weigh 0).

    ``standardize`` keeps a per-dimension mean and standard deviation of the pooled vectors
    (set from the training reviews by :func:`set_standardization`), so a linear head on few
    examples sees features on one scale.

    Binary tasks get one logit (sigmoid + binary cross-entropy, as the seed's ``Dense(1,
    sigmoid)``); more classes get one logit each. ``keras_init`` draws weights the way Keras
    does by default (embedding uniform in +-0.05, Glorot-uniform dense weights, zero biases),
    which the seed's figures depend on; otherwise PyTorch's defaults are kept.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        embedding_dim: int,
        seq_len: int,
        num_classes: int = 2,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        keras_init: bool = True,
        embedding_init: np.ndarray | torch.Tensor | None = None,
        freeze_embedding: bool = False,
        pooling: str = "flatten",
        sparse: bool = False,
        feature_weight: np.ndarray | torch.Tensor | None = None,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        self.standardize = standardize
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.embedding: nn.Embedding | nn.EmbeddingBag
        if pooling in BAGS:
            self.embedding = nn.EmbeddingBag(
                vocab_size, embedding_dim, mode="sum", sparse=sparse, padding_idx=0
            )
        else:
            self.embedding = nn.Embedding(vocab_size, embedding_dim, sparse=sparse)
        weight = torch.ones(vocab_size) if feature_weight is None else feature_weight
        self.register_buffer("feature_weight", torch.as_tensor(weight, dtype=torch.float32))
        pooled = seq_len * embedding_dim if pooling == "flatten" else embedding_dim
        self.register_buffer("feature_mean", torch.zeros(pooled))
        self.register_buffer("feature_std", torch.ones(pooled))
        layers: list[nn.Module] = []
        if dropout:  # on the pooled (or flattened) vectors, and after each hidden layer
            layers.append(nn.Dropout(dropout))
        width = seq_len * embedding_dim if pooling == "flatten" else embedding_dim
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, 1 if num_classes == 2 else num_classes))
        self.head = nn.Sequential(*layers)
        if pooling in BAGS:
            self._fasttext_init(embedding_dim)
        elif keras_init:
            self._keras_init()
        if embedding_init is not None:
            weights = torch.as_tensor(np.asarray(embedding_init), dtype=torch.float32)
            if weights.shape != self.embedding.weight.shape:
                raise ValueError(
                    f"embedding_init has shape {tuple(weights.shape)}, the "
                    f"embedding {tuple(self.embedding.weight.shape)}"
                )
            with torch.no_grad():
                self.embedding.weight.copy_(weights)
        self.embedding.weight.requires_grad_(not freeze_embedding)

    def _keras_init(self) -> None:
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)

    def _fasttext_init(self, dim: int) -> None:
        nn.init.uniform_(self.embedding.weight, -1 / dim, 1 / dim)
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def pool(self, ids: torch.Tensor) -> torch.Tensor:
        """One vector per review: what the head sees, before standardisation."""
        if self.pooling in BAGS:
            mask = (ids != 0).to(self.feature_weight.dtype)
            weights = self.feature_weight[ids] * mask
            if self.pooling == "bag":
                weights = weights / mask.sum(1, keepdim=True).clamp(min=1)
            else:
                weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-8)
            return self.embedding(ids, per_sample_weights=weights)
        vectors = self.embedding(ids)
        if self.pooling == "flatten":
            return vectors.flatten(1)
        mask = (ids != 0).unsqueeze(-1).to(vectors.dtype)
        return (vectors * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        vectors = self.pool(ids)
        if self.standardize:
            vectors = (vectors - self.feature_mean) / self.feature_std
        logits = self.head(vectors)
        return logits.squeeze(-1) if logits.shape[-1] == 1 else logits


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
    """Standardise the pooled vectors with their mean and standard deviation over ``ids``."""
    pooled = torch.cat([net.pool(chunk) for chunk in ids.split(1024)])
    net.feature_mean.copy_(pooled.mean(0))
    net.feature_std.copy_(pooled.std(0) + 1e-6 if len(pooled) > 1 else torch.ones_like(pooled[0]))
