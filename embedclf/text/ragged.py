"""Variable-length id sequences held flat: one id array and ``n + 1`` offsets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Ragged:
    """Variable-length id sequences as one flat array and offsets (``offsets[i]:offsets[i+1]``)."""

    flat: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def keep(self, mask: np.ndarray) -> Ragged:
        """The same sequences with the ids where ``mask`` (over ``flat``) is false dropped."""
        kept = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        return Ragged(self.flat[mask], kept[self.offsets])

    def rows(self, index: np.ndarray) -> Ragged:
        """The rows ``index``, in that order (reads only their ids: ``flat`` may be mapped)."""
        index = np.asarray(index, dtype=np.int64)
        starts = np.asarray(self.offsets[index], dtype=np.int64)
        lengths = np.asarray(self.offsets[index + 1], dtype=np.int64) - starts
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        flat = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Ragged(np.asarray(self.flat[flat]), offsets)

    def sequences(self) -> list[np.ndarray]:
        return np.split(self.flat, self.offsets[1:-1])

    def slice(self, start: int, stop: int) -> Ragged:
        """Rows ``start:stop``, with offsets from 0 (their ids a view, not a copy)."""
        offsets = np.asarray(self.offsets[start : stop + 1], dtype=np.int64)
        return Ragged(self.flat[offsets[0] : offsets[-1]], offsets - offsets[0])

    def truncate(self, maxlen: int, side: str = "pre") -> Ragged:
        """Each row cut to ``maxlen`` ids: its last ones (``"pre"``, Keras's default) or its
        first (``"post"``); rows that fit are kept whole."""
        lengths = self.lengths()
        if not len(lengths) or lengths.max() <= maxlen:
            return self
        kept = np.minimum(lengths, maxlen)
        first = self.offsets[:-1] + (lengths - kept if side == "pre" else 0)
        offsets = np.concatenate([[0], np.cumsum(kept, dtype=np.int64)])
        within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], kept)
        return Ragged(self.flat[np.repeat(first, kept) + within], offsets)


def concatenate(parts: list[Ragged]) -> Ragged:
    """The rows of ``parts`` one after another."""
    if not parts:
        return Ragged(np.zeros(0, np.int32), np.zeros(1, np.int64))
    lengths = np.concatenate([part.lengths() for part in parts])
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
    return Ragged(np.concatenate([part.flat for part in parts]), offsets)
