"""``mean``: the average of the real words' vectors (a bag of embeddings)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedclf.models.encoders.base import Encoder


class Mean(Encoder):
    """The mean over the non-padding positions; its width does not grow with ``seq_len``."""

    kind = "mean"
    layout = "bag"

    def __init__(self, *, dim: int, seq_len: int, rows: int) -> None:
        super().__init__(dim=dim, seq_len=seq_len, rows=rows)
        self.out_dim = dim

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        vectors = embedding(ids)
        weights = mask.unsqueeze(-1).to(vectors.dtype)
        return (vectors * weights).sum(1) / weights.sum(1).clamp(min=1)

    def forward_bag(
        self, embedding: nn.Module, flat: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        return F.embedding_bag(
            flat, embedding.weight, offsets[:-1], mode="mean", sparse=embedding.sparse
        )
