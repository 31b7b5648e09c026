"""``flatten``: the seed's (Chollet 6.1) one weight per position and dimension."""

from __future__ import annotations

import torch
from torch import nn

from embedclf.models.encoders.base import Encoder


class Flatten(Encoder):
    """The vectors of all ``seq_len`` positions side by side: word order matters, and the
    input length is fixed by the training run's ``maxlen``."""

    kind = "flatten"
    layout = "fixed"

    def __init__(self, *, dim: int, seq_len: int, rows: int) -> None:
        super().__init__(dim=dim, seq_len=seq_len, rows=rows)
        self.out_dim = seq_len * dim

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return embedding(ids).flatten(1)
