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
        lengths = self.lengths()[index]
        offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        starts = self.offsets[:-1][index]
        flat = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return Ragged(self.flat[flat], offsets)

    def sequences(self) -> list[np.ndarray]:
        return np.split(self.flat, self.offsets[1:-1])
