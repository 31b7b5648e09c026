"""``rnn``: an LSTM or GRU over the real words, then the last state (both directions' when
bidirectional), or the max or mean over real words.

On a GPU the rows are packed (cuDNN's path). On a CPU, and in ONNX export (which cannot trace
packed sequences), the same outputs come from plain padded passes, one direction of one layer
at a time (:meth:`RNN._padded_steps`), which train far faster there."""

from __future__ import annotations

import functools
import threading
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from embedclf.models.encoders.base import Encoder
from embedclf.models.encoders.sequence import left_aligned

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
POOLS = ("last", "max", "mean")


class RNN(Encoder):
    kind = "rnn"
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"cell": tuple(CELLS), "pool": POOLS}
    counts: ClassVar[dict[str, tuple[int, int | None]]] = {"hidden": (1, None), "layers": (1, 4)}

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
        settings = dict(cell=cell, hidden=hidden, layers=layers, pool=pool)
        self.check_settings(settings, prefix="rnn: ")
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
        self.cell = cell

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ids, lengths = left_aligned(ids, mask)
        x = embedding(ids)
        if x.is_cuda:  # cuDNN's path, which takes rows of any lengths at once
            packed = pack_padded_sequence(
                x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
            )
            steps, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        else:
            steps = self._padded_steps(x, lengths)
        return self._pooled(steps, lengths)

    def _padded_steps(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The RNN's outputs at every step of rows whose real steps come first, exact on those
        steps, from plain padded passes: one direction of one layer at a time, each with the
        RNN's own weights (a one-direction, one-layer RNN holding them for the pass).

        On a CPU this is what trains: a packed batch of rows of different lengths takes 10-20x
        longer in the backward pass (IMDB's 128 reviews of up to 500 words: 1.4 s against
        0.07 s). The forward direction over such rows is exact on the real steps, as the
        padding comes after them; the backward one runs over each row's real steps reversed
        in place (:func:`_reversed_real`), and its outputs are put back in order. It is also
        the graph ONNX export traces, which cannot express packed sequences."""
        rnn = self.rnn
        directions = ("", "_reverse") if self.bidirectional else ("",)
        for layer in range(rnn.num_layers):
            width = rnn.input_size if layer == 0 else self.out_dim
            direction = _direction(self.cell, width, rnn.hidden_size, threading.get_ident())
            outputs = []
            for suffix in directions:
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    # the RNN's own parameters (gradients reach them); RNNBase's __setattr__
                    # puts each into the weights its kernel reads
                    setattr(direction, f"{name}_l0", getattr(rnn, f"{name}_l{layer}{suffix}"))
                steps = _reversed_real(x, lengths) if suffix else x
                out, _ = direction(steps)
                outputs.append(_reversed_real(out, lengths) if suffix else out)
            x = torch.cat(outputs, -1)
            if layer < rnn.num_layers - 1:
                x = F.dropout(x, rnn.dropout, self.training)
        return x

    def _pooled(self, steps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One vector per row from the outputs at each step (``(n, T, out)``, the real steps
        first): the last state (a backward direction's is at the first step), or the max or
        mean over the real steps."""
        hidden = self.rnn.hidden_size
        positions = torch.arange(steps.shape[1], device=steps.device)
        real = (positions < lengths.unsqueeze(1)).unsqueeze(-1).to(steps.dtype)
        if self.pool == "last":
            last = _take_steps(steps[..., :hidden], (lengths - 1).clamp(min=0).unsqueeze(1))[:, 0]
            pooled = torch.cat([last, steps[:, 0, hidden:]], -1) if self.bidirectional else last
        elif self.pool == "mean":
            pooled = (steps * real).sum(1) / real.sum(1).clamp(min=1)
        else:
            pooled = steps.masked_fill(real == 0, float("-inf")).amax(1)
        return _zero_empty(pooled, lengths)


@functools.lru_cache(maxsize=64)
def _direction(cell: str, width: int, hidden: int, thread: int) -> nn.Module:
    """A one-layer, one-direction RNN for :meth:`RNN._padded_steps` to hold a direction's
    weights during a pass: on the meta device (no memory, no draws from the generator), out
    of every module tree and state dict, and one per thread, as a pass sets its weights (the
    server predicts on several threads at once)."""
    return CELLS[cell](width, hidden, batch_first=True, device="meta")


def _reversed_real(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's first ``lengths[i]`` steps in reverse order, the steps after them in place
    (its own inverse)."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    length = lengths.unsqueeze(1)
    return _take_steps(x, torch.where(steps < length, length - 1 - steps, steps))


def _take_steps(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[i, index[i, t]]`` for each row ``i`` and step ``t``: ``(n, T', features)``."""
    index = index.expand(len(x), -1) if index.shape[0] == 1 else index
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _zero_empty(pooled: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zeros for a row with no word (whose max over no step is -inf: zeros, not NaN)."""
    return torch.where((lengths > 0).unsqueeze(-1), pooled, torch.zeros_like(pooled))
