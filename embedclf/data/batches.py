"""What the model is fed: rows of feature ids held flat, padded only where an encoder needs it.

A :class:`Tokens` is a batch's ids as one flat tensor and ``n + 1`` offsets, each row already
cut to the featurizer's ``maxlen``. Bag encoders take it as it is (``nn.EmbeddingBag`` with
offsets: no padding at all); order-aware encoders pad it to the batch's longest row, and
``flatten`` (one weight per position) to ``maxlen``, on the side the featurizer pads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from embedclf.text.ragged import Ragged

PAD_ID = 0  # the id of padding (and of no word): its rows never count


@dataclass
class Tokens:
    """Feature ids of ``len(self)`` rows: ``flat[offsets[i]:offsets[i + 1]]`` is row ``i``."""

    flat: torch.Tensor  # (total,) int64
    offsets: torch.Tensor  # (n + 1,) int64
    padding: str = "pre"  # where padded() puts the padding: "pre" (Keras's default) or "post"

    @classmethod
    def from_ragged(cls, ragged: Ragged, padding: str = "pre") -> Tokens:
        return cls(
            torch.from_numpy(np.asarray(ragged.flat, dtype=np.int64)),
            torch.from_numpy(np.asarray(ragged.offsets, dtype=np.int64)),
            padding,
        )

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> torch.Tensor:
        return self.offsets[1:] - self.offsets[:-1]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Tokens:
        return Tokens(
            self.flat.to(device, non_blocking=non_blocking),
            self.offsets.to(device, non_blocking=non_blocking),
            self.padding,
        )

    def pin_memory(self) -> Tokens:
        return Tokens(self.flat.pin_memory(), self.offsets.pin_memory(), self.padding)

    def split(self, size: int) -> list[Tokens]:
        """Consecutive batches of ``size`` rows (the last may be shorter)."""
        parts = []
        for start in range(0, len(self), size):
            offsets = self.offsets[start : start + size + 1]
            flat = self.flat[offsets[0] : offsets[-1]]
            parts.append(Tokens(flat, offsets - offsets[0], self.padding))
        return parts

    def dropped(self, rate: float) -> Tokens:
        """These rows with each id left out with probability ``rate`` (word dropout: the
        rows' other ids close up, as if the word were not in the text), drawn from torch's
        generator on the ids' device."""
        keep = torch.rand(len(self.flat), device=self.flat.device) >= rate
        kept_before = torch.cat([keep.new_zeros(1, dtype=torch.int64), keep.cumsum(0)])
        offsets = kept_before[self.offsets] - kept_before[self.offsets[0]]
        return Tokens(self.flat[keep], offsets, self.padding)

    def padded(self, width: int | None = None) -> torch.Tensor:
        """``(n, width)`` ids with :data:`PAD_ID` filling each row on the ``padding`` side;
        ``width=None``: the longest row's length (at least 1). Rows must fit ``width``."""
        longest = int(self.lengths().max()) if len(self) else 0
        width = max(longest, 1) if width is None else width
        if longest > width:
            raise ValueError(f"a row of {longest} ids does not fit a width of {width}")
        # each cell's position in flat, read through one gather: a row's ids sit at the end
        # of its cells ("pre") or at the start ("post"); a cell outside its row reads the
        # padding appended after flat
        starts, ends = self.offsets[:-1], self.offsets[1:]
        columns = torch.arange(width, device=self.flat.device)
        if self.padding == "pre":
            where = (ends - width).unsqueeze(1) + columns
            outside = where < starts.unsqueeze(1)
        else:
            where = starts.unsqueeze(1) + columns
            outside = where >= ends.unsqueeze(1)
        source = torch.cat([self.flat, self.flat.new_full((1,), PAD_ID)])
        return source[where.masked_fill_(outside, len(self.flat))]


@dataclass
class Batch:
    """Rows of one split on the model's device; ``step_size`` rows per optimiser step."""

    tokens: Tokens
    labels: torch.Tensor
    step_size: int

    def __len__(self) -> int:
        return len(self.labels)

    def parts(self, width: int | None = None) -> list[tuple[Tokens | torch.Tensor, torch.Tensor]]:
        """The batches of one optimiser step each, in order; with ``width`` (an encoder that
        takes ids padded to a fixed width), padded once for all of them, then split."""
        size = self.step_size
        labels = self.labels.split(size)
        rows = self.tokens.padded(width).split(size) if width else self.tokens.split(size)
        return list(zip(rows, labels, strict=True))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        labels = self.labels.to(device, non_blocking=non_blocking)
        return Batch(self.tokens.to(device, non_blocking), labels, self.step_size)

    def pin_memory(self) -> Batch:
        return Batch(self.tokens.pin_memory(), self.labels.pin_memory(), self.step_size)
