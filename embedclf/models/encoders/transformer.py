"""``transformer``: a small Transformer encoder over the real words, positions counted from
each row's first real word (so padding on either side never moves them), padding masked out
of attention, then the masked mean or a CLS token."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from embedclf.models.encoders.base import Encoder, whole
from embedclf.models.encoders.sequence import left_aligned

MAX_POSITIONS = 4096
POOLS = ("mean", "cls")
POSITIONS = ("learned", "sinusoidal")


def sinusoid(positions: int, width: int) -> torch.Tensor:
    """Vaswani et al.'s fixed position encodings, ``(positions, width)``."""
    position = torch.arange(positions, dtype=torch.float32).unsqueeze(1)
    scale = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(1e4) / width))
    table = torch.zeros(positions, width)
    table[:, 0::2] = torch.sin(position * scale)
    table[:, 1::2] = torch.cos(position * scale)[:, : width // 2]
    return table


class Transformer(Encoder):
    kind = "transformer"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"positions": POSITIONS, "pool": POOLS}
    flags: ClassVar[tuple[str, ...]] = ("final_norm",)
    counts: ClassVar[dict[str, tuple[int, int | None]]] = {
        "layers": (1, None),
        "heads": (1, None),
        "ff": (1, None),
    }

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], prefix: str = "") -> None:
        """Also a ``width`` the heads divide (when it is set: else the embedding's width,
        known once the vectors are read, is checked when the encoder is built)."""
        super().check_settings(settings, prefix)
        heads, width = settings.get("heads", cls.default("heads")), settings.get("width")
        if width is not None and not (whole(width) and width >= 1 and width % heads == 0):
            raise ValueError(
                f"{prefix}width={width!r} must be a whole number that heads={heads} divides "
                "(null: the embedding's width)"
            )

    def __init__(
        self,
        *,
        dim: int,
        seq_len: int,
        rows: int,
        width: int | None = None,
        layers: int = 2,
        heads: int = 4,
        ff: int = 128,
        dropout: float = 0.1,
        positions: str = "learned",
        pool: str = "mean",
        final_norm: bool = False,
    ) -> None:
        super().__init__(dim=dim, seq_len=seq_len, rows=rows)
        width = width or dim
        settings = dict(
            width=width,
            layers=layers,
            heads=heads,
            ff=ff,
            positions=positions,
            pool=pool,
            final_norm=final_norm,
        )
        self.check_settings(settings, prefix="transformer: ")
        self.pool = pool
        self.project = nn.Linear(dim, width) if width != dim else nn.Identity()
        if positions == "learned":
            self.positions = nn.Parameter(torch.randn(MAX_POSITIONS, width) * 0.02)
        else:
            self.register_buffer("positions", sinusoid(MAX_POSITIONS, width))
        self.cls = nn.Parameter(torch.zeros(1, 1, width)) if pool == "cls" else None
        layer = nn.TransformerEncoderLayer(
            width, heads, ff, dropout, batch_first=True, norm_first=True
        )
        # pre-LN layers leave the residual stream unnormalised: final_norm puts a LayerNorm
        # after the last (as GPT-2 and ViT do); off, checkpoints of before it load as they were
        norm = nn.LayerNorm(width) if final_norm else None
        self.encoder = nn.TransformerEncoder(layer, layers, norm=norm, enable_nested_tensor=False)
        self.out_dim = width

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, lengths = left_aligned(ids, mask)
        longest = max(int(lengths.max()), 1) if len(lengths) else 1
        ids = ids[:, :longest]  # the batch padded only to its longest row
        real = torch.arange(longest, device=ids.device) < lengths.unsqueeze(1)
        x = self.project(embedding(ids)) + self.positions[:longest]
        if self.cls is not None:
            x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1)
            real = torch.cat([real.new_ones(len(x), 1), real], 1)
        # a row with no word attends to its first (padding) position, not to nothing (NaN);
        # the mean below still weighs it 0
        attend = torch.cat([real[:, :1] | ~real.any(1, keepdim=True), real[:, 1:]], 1)
        hidden = self.encoder(x, src_key_padding_mask=~attend)
        if self.cls is not None:
            return hidden[:, 0]
        weights = real.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
