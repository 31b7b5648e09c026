"""The network: an embedding, pooled or flattened, then a small dense head."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

POOLINGS = ("flatten", "mean", "bag")


class EmbeddingClassifier(nn.Module):
    """``Embedding -> Flatten | Mean -> [Dense + ReLU]* -> Dense``, returning logits.

    ``pooling="flatten"`` is the seed's: one weight per position and dimension, so word order
    matters and ``seq_len`` is fixed. ``pooling="mean"`` averages the vectors of the real
    (non-padding, id 0) words: a bag of embeddings, whose size does not grow with ``seq_len``.
    ``pooling="bag"`` is fastText's: an ``nn.EmbeddingBag`` summing the features' vectors
    (words and hashed n-grams), each weighted by ``feature_weight[id]`` over the review's
    feature count (so a mean when the weights are 1; NBSVM's log-count ratios otherwise, see
    :func:`nb_feature_weights`), with sparse gradients when ``sparse``; its embedding starts
    uniform in +-1/dim and its head at zero, as fastText's.

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
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.embedding: nn.Embedding | nn.EmbeddingBag
        if pooling == "bag":
            self.embedding = nn.EmbeddingBag(
                vocab_size, embedding_dim, mode="sum", sparse=sparse, padding_idx=0
            )
        else:
            self.embedding = nn.Embedding(vocab_size, embedding_dim, sparse=sparse)
        weight = torch.ones(vocab_size) if feature_weight is None else feature_weight
        self.register_buffer("feature_weight", torch.as_tensor(weight, dtype=torch.float32))
        layers: list[nn.Module] = [nn.Flatten()] if pooling == "flatten" else []
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
        if pooling == "bag":
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

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.pooling == "bag":
            mask = (ids != 0).to(self.feature_weight.dtype)
            weights = self.feature_weight[ids] * mask / mask.sum(1, keepdim=True).clamp(min=1)
            return self._logits(self.embedding(ids, per_sample_weights=weights))
        vectors = self.embedding(ids)
        if self.pooling == "mean":
            mask = (ids != 0).unsqueeze(-1).to(vectors.dtype)
            vectors = (vectors * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self._logits(vectors)

    def _logits(self, vectors: torch.Tensor) -> torch.Tensor:
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
