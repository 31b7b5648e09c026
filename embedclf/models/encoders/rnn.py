"""``rnn``: an LSTM or GRU over the real words (packed sequences, cuDNN's path on a GPU), then
the last state (both directions' when bidirectional), or the max or mean over real words.

ONNX export cannot trace packed sequences, so exported models take :meth:`RNN.forward_unpacked`:
the same outputs from plain padded passes, layer by layer (see there)."""

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
        return _zero_empty(pooled, lengths)

    def single_layers(self) -> nn.ModuleList:
        """One one-layer copy of the RNN per layer, holding that layer's trained weights
        (built before tracing: building draws initial weights, which a trace would record)."""
        rnn, layers = self.rnn, nn.ModuleList()
        for number in range(rnn.num_layers):
            width = rnn.hidden_size * (2 if rnn.bidirectional else 1) if number else rnn.input_size
            layer = type(rnn)(
                width, rnn.hidden_size, batch_first=True, bidirectional=rnn.bidirectional
            )
            suffix = f"_l{number}"
            layer.load_state_dict(
                {
                    name.replace(suffix, "_l0"): value
                    for name, value in rnn.state_dict().items()
                    if name.endswith((suffix, f"{suffix}_reverse"))
                }
            )
            layers.append(layer.eval())
        return layers

    def forward_unpacked(
        self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor, layers: nn.ModuleList
    ) -> torch.Tensor:
        """:meth:`forward`'s result without packing, for ONNX export (``layers``:
        :meth:`single_layers`).

        With the real words first, a forward pass over the padded rows is exact on the real
        steps (the padding comes after them). The backward direction must start at each row's
        last real word, so it runs over the rows shifted right (padding first) and its outputs
        are shifted back. Each layer takes both directions' exact outputs, so layers run one
        at a time, with the trained weights of that layer.
        """
        ids, lengths = left_aligned(ids, mask)
        x = embedding(ids)
        steps = torch.arange(x.shape[1], device=ids.device)
        shift = (x.shape[1] - lengths).unsqueeze(1)  # padding before each right-aligned row
        hidden = self.rnn.hidden_size
        for layer in layers:
            out, _ = layer(x)
            if self.bidirectional:
                right = _take_steps(x, (steps - shift).clamp(min=0))
                backward, _ = layer(right)
                back = _take_steps(
                    backward[..., hidden:], (steps + shift).clamp(max=x.shape[1] - 1)
                )
                out = torch.cat([out[..., :hidden], back], -1)
            x = out
        real = (steps < lengths.unsqueeze(1)).unsqueeze(-1).to(x.dtype)
        if self.pool == "last":
            last = _take_steps(x[..., :hidden], (lengths - 1).clamp(min=0).unsqueeze(1))[:, 0]
            pooled = torch.cat([last, x[:, 0, hidden:]], -1) if self.bidirectional else last
        elif self.pool == "mean":
            pooled = (x * real).sum(1) / real.sum(1).clamp(min=1)
        else:
            pooled = x.masked_fill(real == 0, float("-inf")).amax(1)
        return _zero_empty(pooled, lengths)


def _take_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[i, index[i, t]]`` for each row ``i`` and step ``t``: ``(n, T', features)``."""
    index = index.expand(len(x), -1) if index.shape[0] == 1 else index
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _zero_empty(pooled: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zeros for a row with no word (whose max over no step is -inf: zeros, not NaN)."""
    return torch.where((lengths > 0).unsqueeze(-1), pooled, torch.zeros_like(pooled))
