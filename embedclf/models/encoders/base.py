"""The encoder protocol: what every encoder under the classifier's head provides.

An encoder turns a batch of padded feature ids ``(n, length)`` into one vector per row,
``(n, out_dim)``. It is handed the classifier's embedding (``nn.Embedding``, or
``nn.EmbeddingBag`` where :attr:`Encoder.bag` says so) with the ids and their mask
(``ids != PAD_ID``), so encoders that look vectors up row by row and bags that fuse lookup
and pooling share one call. Every encoder is built from plain settings (its part of the
``net`` spec) as ``cls(dim=..., seq_len=..., rows=..., **settings)``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

PAD_ID = 0  # the id of padding (and of no word): its rows never count


class Encoder(nn.Module):
    """One vector per row of ids. Subclasses set :attr:`out_dim` and :meth:`forward`."""

    kind: ClassVar[str]
    bag: ClassVar[bool] = False  # True: the embedding is an nn.EmbeddingBag (sum mode)
    out_dim: int

    def __init__(self, *, dim: int, seq_len: int, rows: int) -> None:
        super().__init__()
        self.dim, self.seq_len, self.rows = dim, seq_len, rows

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
