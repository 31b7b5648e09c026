"""``bag`` and ``weighted_mean``: fastText's weighted bag of features in an ``nn.EmbeddingBag``.

Each feature (a word or a hashed n-gram) weighs ``feature_weight[id]``, a buffer set from
the training data (``models/weighting.py``: NBSVM's log-count ratios, or smooth inverse
frequency) or left at 1. ``bag`` divides the weighted sum by the row's feature count (a mean
when the weights are 1: fastText); ``weighted_mean`` divides it by the sum of the weights.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from embedclf.models.encoders.base import Encoder
from embedclf.models.sparse_rows import bag_of_rows, bag_weights

WEIGHTINGS = ("none", "nb", "sif")


class Bag(Encoder):
    kind = "bag"
    bag = True
    layout = "bag"
    by_weight: ClassVar[bool] = False  # divide by the weights' sum instead of the count
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"weighting": WEIGHTINGS}

    def __init__(
        self, *, dim: int, seq_len: int, rows: int, weighting: str = "none", sif_a: float = 1e-3
    ) -> None:
        super().__init__(dim=dim, seq_len=seq_len, rows=rows)
        self.check_settings(dict(weighting=weighting), prefix=f"{self.kind}: ")
        self.weighting, self.sif_a = weighting, sif_a
        self.out_dim = dim
        self.register_buffer("feature_weight", torch.ones(rows))

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        real = mask.to(self.feature_weight.dtype)
        weights = self.feature_weight[ids] * real
        if self.by_weight:
            weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-8)
        else:
            weights = weights / real.sum(1, keepdim=True).clamp(min=1)
        # the weighted sum written out (not nn.EmbeddingBag on 2-D ids): the same vectors, in
        # operations ONNX export can express; padding weighs 0
        vectors = F.embedding(ids, embedding.weight)
        return (vectors * weights.unsqueeze(-1).to(vectors.dtype)).sum(1)

    def forward_bag(
        self, embedding: nn.Module, flat: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        if not embedding.sparse:
            weights = bag_weights(self.feature_weight, flat, offsets, self.by_weight)
            return embedding(flat, offsets[:-1], per_sample_weights=weights)
        # a sparse table (2^21 hashed n-gram rows): its gradient one row per distinct
        # feature, found without sorting (models/sparse_rows.py)
        return bag_of_rows(embedding.weight, flat, offsets, self.feature_weight, self.by_weight)


class WeightedMean(Bag):
    kind = "weighted_mean"
    by_weight = True
