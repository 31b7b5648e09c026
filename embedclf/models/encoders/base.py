"""The encoder protocol: what every encoder under the classifier's head provides.

An encoder turns a batch of feature ids into one vector per row, ``(n, out_dim)``. Its
:attr:`Encoder.layout` says what it takes: ``"fixed"``, ids padded to ``seq_len`` (flatten's one
weight per position); ``"longest"``, ids padded to the batch's longest row (order-aware
encoders); ``"bag"``, the ids flat with offsets, not padded at all (:meth:`Encoder.forward_bag`,
``nn.EmbeddingBag``'s own input). Every encoder also takes padded ids (:meth:`Encoder.forward`:
checkpoints exported or scored on padded rows). Both are handed the classifier's embedding
(``nn.Embedding``, or ``nn.EmbeddingBag`` where :attr:`Encoder.bag` says so); ``forward`` gets
the ids and their mask (``ids != PAD_ID``). Every encoder is built from plain settings (its
part of the ``net`` spec) as ``cls(dim=..., seq_len=..., rows=..., **settings)``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from embedclf.data.batches import PAD_ID  # noqa: F401  (re-exported: encoders' padding id)

LAYOUTS = ("fixed", "longest", "bag")


class Encoder(nn.Module):
    """One vector per row of ids. Subclasses set :attr:`out_dim` and :meth:`forward`."""

    kind: ClassVar[str]
    bag: ClassVar[bool] = False  # True: the embedding is an nn.EmbeddingBag (sum mode)
    layout: ClassVar[str] = "longest"  # one of LAYOUTS
    # the settings that take one of a few names, and those names (checked before a run)
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    # the whole-number settings (or lists of them) and their least and greatest values
    counts: ClassVar[dict[str, tuple[int, int | None]]] = {}
    out_dim: int

    def __init__(self, *, dim: int, seq_len: int, rows: int) -> None:
        super().__init__()
        self.dim, self.seq_len, self.rows = dim, seq_len, rows

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_bag(
        self, embedding: nn.Module, flat: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        """Rows as flat ids and ``n + 1`` offsets (``layout = "bag"`` encoders only)."""
        raise NotImplementedError
