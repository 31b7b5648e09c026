"""A vocabulary's words as an open-addressing hash table of their UTF-8 bytes, built once by
numba and looked up a whole chunk of words at a time: no Python object per word.

A predictor scores batch after batch with one vocabulary. Arrow's ``index_in`` builds its
hash table on every call (7.1 s for 25k texts against 1.1M words), and the dict needs a Python
string per distinct word and a lookup that reads the dict's key objects at random (250 ns a
word against the 1M set's 500k words, 6.8 of a batch's 24 ms). Here a word costs a hash of its
bytes and a probe of the slots, comparing bytes with the words of its length met on the way.
"""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa

from embedclf.util.prefetch import prefetch

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_AHEAD = 8  # words whose slots are asked for ahead of the one in hand


@numba.njit(cache=True, nogil=True)
def _hashes(data, offsets):  # pragma: no cover - jit
    # FNV-1a over each word's bytes
    out = np.empty(offsets.shape[0] - 1, np.uint64)
    for w in range(out.shape[0]):
        h = _FNV_OFFSET
        for i in range(offsets[w], offsets[w + 1]):
            h = (h ^ np.uint64(data[i])) * _FNV_PRIME
        out[w] = h
    return out


@numba.njit(cache=True, nogil=True)
def _fill(hashes, slots):  # pragma: no cover - jit
    # each word's position in the first free slot from its hash on (the words are distinct)
    mask = np.uint64(slots.shape[0] - 1)
    for w in range(hashes.shape[0]):
        s = hashes[w] & mask
        while slots[s] >= 0:
            s = (s + np.uint64(1)) & mask
        slots[s] = w


@numba.njit(cache=True, nogil=True)
def _find(slots, known, known_offsets, data, offsets, hashes, out):  # pragma: no cover - jit
    # each word's position among the known words, or -1: probe from its hash until an empty
    # slot, comparing bytes where a slot holds a word
    mask = np.uint64(slots.shape[0] - 1)
    for w in range(hashes.shape[0]):
        if w + _AHEAD < hashes.shape[0]:
            prefetch(slots, hashes[w + _AHEAD] & mask)
        start, length = offsets[w], offsets[w + 1] - offsets[w]
        s = hashes[w] & mask
        found = -1
        while slots[s] >= 0:
            k = slots[s]
            at = known_offsets[k]
            if known_offsets[k + 1] - at == length:
                same = True
                for i in range(length):
                    if known[at + i] != data[start + i]:
                        same = False
                        break
                if same:
                    found = k
                    break
            s = (s + np.uint64(1)) & mask
        out[w] = found


def _bytes_of(words: pa.LargeBinaryArray) -> tuple[np.ndarray, np.ndarray]:
    """The array's bytes and its ``len + 1`` offsets into them, without copies."""
    # the loops read 64-bit offsets and take every entry for a word: anything else would have
    # them read past the buffers
    if not (pa.types.is_large_binary(words.type) or pa.types.is_large_string(words.type)):
        raise TypeError(f"WordTable reads large_binary arrays, not {words.type}")
    if words.null_count:
        raise ValueError("WordTable looks up words, not nulls")
    _, offsets, data = words.buffers()
    ends = np.frombuffer(offsets, np.int64)[words.offset : words.offset + len(words) + 1]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    return raw, ends


class WordTable:
    """The positions of ``words`` (distinct byte strings: UTF-8, lone surrogates passed) for
    chunks of words."""

    def __init__(self, words: pa.LargeBinaryArray) -> None:
        self._words = words  # holds the buffers that the views below read
        self._data, self._offsets = _bytes_of(words)
        # a power of two at least twice the words: probes stay short, the mask picks a slot
        size = 1 << max(4, int(2 * max(len(words), 1) - 1).bit_length())
        self._slots = np.full(size, -1, np.int32)
        _fill(_hashes(self._data, self._offsets), self._slots)

    def positions(self, words: pa.LargeBinaryArray) -> np.ndarray:
        """Each of ``words``'s position among the table's words (int64), or -1."""
        data, offsets = _bytes_of(words)
        out = np.empty(len(words), np.int64)
        _find(self._slots, self._data, self._offsets, data, offsets, _hashes(data, offsets), out)
        return out
