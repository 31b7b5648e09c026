"""fastText's hashed word n-grams, computed over whole ragged batches with numpy."""

from __future__ import annotations

import numpy as np

from embedclf.text.ragged import Ragged

# fastText's multiplier for hashing word n-grams: h = h * M + id (mod 2**64)
NGRAM_HASH_MULTIPLIER = np.uint64(116049371)


def hashed_ngrams(ids: Ragged, ngrams: int, buckets: int, offset: int) -> Ragged:
    """Each sequence's ids followed, position by position, by its hashed n-grams.

    At position ``p`` of a sequence come the id at ``p``, then the n-grams of orders 2 to
    ``ngrams`` ending at ``p`` (when the sequence has that many ids by then), each hashed over
    the word ids to ``offset + h mod buckets``. Features stay in word order, so truncating a
    long review drops whole words together with their n-grams.
    """
    if ngrams <= 1 or buckets <= 0:
        return ids
    flat = ids.flat.astype(np.uint64)
    n = len(flat)
    start_of = np.repeat(ids.offsets[:-1], ids.lengths())  # sequence start of each position
    position = np.arange(n) - start_of
    table = np.full((n, ngrams), -1, dtype=np.int64)
    table[:, 0] = ids.flat
    h = flat.copy()
    with np.errstate(over="ignore"):  # the hash wraps around 2**64 by design
        for order in range(2, ngrams + 1):
            previous = np.zeros(n, dtype=np.uint64)
            previous[1:] = h[:-1]  # the (order-1)-gram ending one position earlier
            h = previous * NGRAM_HASH_MULTIPLIER + flat
            valid = position >= order - 1
            table[valid, order - 1] = offset + (h[valid] % np.uint64(buckets)).astype(np.int64)
    return Ragged(table.reshape(-1), ids.offsets * ngrams).keep(table.reshape(-1) >= 0)
