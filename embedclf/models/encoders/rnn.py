"""``rnn``: an LSTM or GRU over the real words (packed sequences, cuDNN's path on a GPU), then
the last state (both directions' when bidirectional), or the max or mean over real words."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from embedclf.models.encoders.base import Encoder
from embedclf.models.encoders.sequence import left_aligned

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
POOLS = ("last", "max", "mean")


class RNN(Encoder):
    kind = "rnn"

    def __init__(
        self,
        *,
        dim: int,
        seq_len: int,
        rows: int,
        cell: str = "lstm",
        hidden: int = 64,
        layers: int = 1,
        bidirectional: bool = False,
        pool: str = "last",
        dropout: float = 0.0,
    ) -> None:
        super().__init__(dim=dim, seq_len=seq_len, rows=rows)
        if cell not in CELLS or pool not in POOLS or not 1 <= layers <= 4:
            raise ValueError(
                f"rnn: cell must be one of {', '.join(CELLS)}, pool one of {', '.join(POOLS)}, "
                f"layers 1 to 4; got {cell!r}, {pool!r}, {layers}"
            )
        self.pool, self.bidirectional = pool, bidirectional
        self.rnn = CELLS[cell](
            dim,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
        )
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, lengths = left_aligned(ids, mask)
        packed = pack_padded_sequence(
            embedding(ids), lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, state = self.rnn(packed)
        if self.pool == "last":
            last = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
            pooled = torch.cat([last[-2], last[-1]], -1) if self.bidirectional else last[-1]
        else:
            steps, _ = pad_packed_sequence(outputs, batch_first=True)  # (n, longest, out)
            real = mask.new_zeros(steps.shape[:2])
            real[:] = torch.arange(steps.shape[1], device=ids.device) < lengths.unsqueeze(1)
            weights = real.unsqueeze(-1).to(steps.dtype)
            if self.pool == "mean":
                pooled = (steps * weights).sum(1) / weights.sum(1).clamp(min=1)
            else:
                pooled = steps.masked_fill(weights == 0, float("-inf")).amax(1)
        return pooled * (lengths > 0).unsqueeze(-1).to(pooled.dtype)  # an empty row: zeros
