"""Kim (2014)'s multichannel embedding: two copies of the same pretrained vectors side by side,
the first kept as it is (static), the second tuned with the task.

Each word's two vectors are concatenated, so an encoder sees rows ``2 * dim`` wide: a filter
over both channels is the sum of a filter over each, which is Kim's model. The static copy
keeps what the pretrained vectors know about words the training texts use in few contexts;
the tuned copy adapts the others to the task.
"""

from __future__ import annotations

import torch
from torch import nn


class TwoChannels(nn.Module):
    """``forward(ids)``: ``[static(ids), tuned(ids)]``; ``weight``: both tables side by side."""

    def __init__(self, rows: int, dim: int, sparse: bool = False) -> None:
        super().__init__()
        self.static = nn.Embedding(rows, dim)
        self.tuned = nn.Embedding(rows, dim, sparse=sparse)
        self.static.weight.requires_grad_(False)
        self.num_embeddings, self.sparse = rows, sparse

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat([self.static.weight, self.tuned.weight], 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.static(ids), self.tuned(ids)], -1)

    def tables(self) -> tuple[nn.Parameter, nn.Parameter]:
        return self.static.weight, self.tuned.weight
