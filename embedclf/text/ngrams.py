"""fastText's hashed word n-grams, computed over whole ragged batches by a numba loop.

A loop, not array operations: numpy's version built an ``n x ngrams`` table of int64 and masked
it, 325 ms for 51,200 rows of the scale benchmark, against about 60 ms here, and a run too
large for ``data.feature_cache_mb`` hashes every batch again each epoch.

One thread (``nogil``: predict's threads run it side by side): DataLoader workers are forked,
and numba's OpenMP threads do not survive a fork (a worker that used them hung).
"""

from __future__ import annotations

import numba
import numpy as np

from embedclf.text.ragged import Ragged

# fastText's multiplier for hashing word n-grams: h = h * M + id (mod 2**64)
NGRAM_HASH_MULTIPLIER = np.uint64(116049371)


@numba.njit(cache=True, nogil=True)
def _hash_rows(flat, offsets, starts, skips, ngrams, buckets, offset, out):  # pragma: no cover
    # h of the n-gram ending at p: sum of flat[p - i] * M**i (mod 2**64), i < order; so
    # h = h' * M + flat[p] with h' the (order-1)-gram ending at p - 1, as fastText hashes it.
    # h mod a power of two is its low bits: a mask, where a 64-bit division takes tens of cycles.
    # A row's first skips[row] features are not written (cut by maxlen), nor those past its
    # part of out (starts[row + 1]): rows are cut as they are hashed, not copied again after
    low = buckets - np.uint64(1)
    masked = (buckets & low) == 0
    for row in range(offsets.shape[0] - 1):
        start, stop = offsets[row], offsets[row + 1]
        o = starts[row] - skips[row]  # where the row's first feature would go, uncut
        end = starts[row + 1]
        for p in range(start, stop):
            if o >= end:
                break
            if o >= starts[row]:
                out[o] = flat[p]
            o += 1
            h = np.uint64(flat[p])
            power = np.uint64(1)
            for order in range(2, ngrams + 1):
                q = p - order + 1
                if q < start:
                    break
                power = power * NGRAM_HASH_MULTIPLIER
                h = h + np.uint64(flat[q]) * power
                if starts[row] <= o < end:
                    out[o] = offset + np.int64((h & low) if masked else (h % buckets))
                o += 1


def hashed_ngrams(
    ids: Ragged,
    ngrams: int,
    buckets: int,
    offset: int,
    maxlen: int | None = None,
    truncating: str = "pre",
) -> Ragged:
    """Each sequence's ids followed, position by position, by its hashed n-grams.

    At position ``p`` of a sequence come the id at ``p``, then the n-grams of orders 2 to
    ``ngrams`` ending at ``p`` (when the sequence has that many ids by then), each hashed over
    the word ids to ``offset + h mod buckets``. Features stay in word order, so truncating a
    long review drops whole words together with their n-grams. With ``maxlen``, each row keeps
    only its last (``truncating="pre"``) or first (``"post"``) ``maxlen`` features, as
    ``.truncate(maxlen, truncating)`` would, without making the others.
    """
    if ngrams <= 1 or buckets <= 0:
        return ids if maxlen is None else ids.truncate(maxlen, truncating)
    lengths = ids.lengths().astype(np.int64)
    counts = lengths.copy()
    for order in range(2, ngrams + 1):
        counts += np.maximum(lengths - (order - 1), 0)
    kept = counts if maxlen is None else np.minimum(counts, maxlen)
    skips = counts - kept if truncating == "pre" else np.zeros_like(counts)
    offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)
    out = np.empty(int(offsets[-1]), dtype=np.int64)
    _hash_rows(
        np.asarray(ids.flat, dtype=np.int64),
        np.asarray(ids.offsets, dtype=np.int64),
        offsets,
        skips,
        ngrams,
        np.uint64(buckets),
        np.int64(offset),
        out,
    )
    return Ragged(out, offsets)
