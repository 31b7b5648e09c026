"""What turns raw text into a model's input, carried by every checkpoint.

A :class:`TextEncoder` holds the vocabulary (the word of each id), the tokeniser's settings,
the n-gram features and the padding, and the class names, all as plain types: a checkpoint
holding its :meth:`~TextEncoder.state_dict` loads with ``torch.load(weights_only=True)`` and
classifies raw text with no dataset, token cache or ``conf/`` beside it. Training, evaluation
and prediction all encode text through this one class, so preprocessing can never drift
between them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from embedclf.corpus import Ragged
from embedclf.errors import CheckpointError
from embedclf.tokenizer import ids_of, pad_ragged

ENCODER_FORMAT = 1
# bounds a checkpoint's encoder must keep: it is data, and sizes in it become allocations
MAX_FEATURES = 1 << 20
MAX_NGRAMS = 5
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


@dataclass
class TextEncoder:
    """Raw text -> padded feature ids, exactly as in training.

    ``vocab[i]`` is the word of id ``i`` (``""`` at 0, padding). With ``ngrams > 1`` each
    review's ids are followed by hashed n-gram ids in ``[len(vocab), len(vocab) + buckets)``.
    """

    vocab: list[str]
    classes: list[str]
    filters: str
    lower: bool
    maxlen: int
    padding: str = "pre"
    truncating: str = "pre"
    ngrams: int = 1
    buckets: int = 0

    @property
    def input_size(self) -> int:
        """Rows the embedding needs: every id an encoded text can hold."""
        return len(self.vocab) + (self.buckets if self.ngrams > 1 else 0)

    def word_ids(self, texts: Sequence[str]) -> Ragged:
        index = {word: i for i, word in enumerate(self.vocab) if i}
        return ids_of(list(texts), index, self.filters, self.lower)

    def features(self, ids: Ragged) -> Ragged:
        return hashed_ngrams(ids, self.ngrams, self.buckets, len(self.vocab))

    def pad(self, features: Ragged) -> np.ndarray:
        dtype = np.int32 if self.input_size < 2**31 else np.int64
        return pad_ragged(features, self.maxlen, self.padding, self.truncating, dtype=dtype)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), maxlen)`` ids, ready for the model."""
        return self.pad(self.features(self.word_ids(texts)))

    def digest(self) -> str:
        """A short hash of everything that decides the ids (a cache key)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def state_dict(self) -> dict[str, Any]:
        return {"format": ENCODER_FORMAT, **asdict(self)}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], where: str = "checkpoint") -> TextEncoder:
        if not isinstance(state, Mapping) or state.get("format") != ENCODER_FORMAT:
            raise CheckpointError(f"{where} holds no text encoder this version of embedclf reads")
        names = {f.name for f in fields(cls)}
        try:
            encoder = cls(**{k: v for k, v in state.items() if k in names})
        except TypeError as err:
            raise CheckpointError(f"{where} holds an incomplete text encoder ({err})") from None
        if not (
            isinstance(encoder.vocab, list)
            and all(isinstance(w, str) for w in encoder.vocab)
            and isinstance(encoder.classes, list)
            and len(encoder.classes) >= 2
            and all(isinstance(c, str) for c in encoder.classes)
            and isinstance(encoder.filters, str)
            and isinstance(encoder.lower, bool)
            and all(
                isinstance(v, int) and not isinstance(v, bool)
                for v in (encoder.maxlen, encoder.ngrams, encoder.buckets)
            )
            and 1 <= encoder.maxlen <= MAX_FEATURES
            and 1 <= encoder.ngrams <= MAX_NGRAMS
            and 0 <= encoder.buckets <= MAX_FEATURES * 64
            and encoder.padding in ("pre", "post")
            and encoder.truncating in ("pre", "post")
        ):
            raise CheckpointError(f"{where} holds a malformed text encoder")
        return encoder
