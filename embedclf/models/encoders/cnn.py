"""``cnn``: Kim (2014)'s convolutions over the word vectors, ReLU, max over time (``pool:
max``), the mean over the windows (``mean``: a bag of learned n-gram features, as in Johnson
and Zhang 2015's seq-CNN), or both side by side (``max_mean``).

Each row is convolved as a wide convolution: its real words with ``width - 1`` zero vectors on
either side, and only the windows that hold at least one real word count. So a row shorter than
the widest filter still has windows, and padding, however much and on whichever side, never
changes the output (padding vectors are zeroed, and all-padding windows are left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from embedclf.models.encoders.base import Encoder

POOLS = ("max", "mean", "max_mean")


class CNN(Encoder):
    kind = "cnn"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"pool": POOLS}
    counts: ClassVar[dict[str, tuple[int, int | None]]] = {
        "widths": (1, None),
        "filters": (1, None),
    }

    def __init__(
        self,
        *,
        dim: int,
        seq_len: int,
        rows: int,
        widths: Sequence[int] = (3, 4, 5),
        filters: int = 100,
        pool: str = "max",
    ) -> None:
        super().__init__(dim=dim, seq_len=seq_len, rows=rows)
        self.check_settings(dict(widths=widths, filters=filters, pool=pool), prefix="cnn: ")
        self.widths, self.pool = [int(w) for w in widths], pool
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w) for w in self.widths)
        self.out_dim = filters * len(self.widths) * (2 if pool == "max_mean" else 1)

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        real = mask.unsqueeze(1).to(torch.float32)  # (n, 1, L)
        vectors = embedding(ids).transpose(1, 2)
        vectors = vectors * real.to(vectors.dtype)
        pooled = []
        for width, conv in zip(self.widths, self.convs, strict=True):
            x = F.pad(vectors, (width - 1, width - 1))
            has_real = F.conv1d(F.pad(real, (width - 1, width - 1)), real.new_ones(1, 1, width))
            # ReLU outputs are >= 0: zeroing the windows without a real word leaves the max of
            # the others (and 0 for a row with no word at all)
            windows = has_real > 0
            features = F.relu(conv(x)) * windows
            if self.pool != "mean":
                pooled.append(features.amax(-1))
            if self.pool != "max":
                # summed in float32: a long review's sum can pass float16's largest number
                total = features.sum(-1, dtype=torch.float32)
                pooled.append((total / windows.sum(-1).clamp(min=1)).to(features.dtype))
        return torch.cat(pooled, dim=-1)
