"""What turns raw text into a model's input, carried by every checkpoint.

A :class:`TextFeaturizer` holds the vocabulary (the word of each id), the tokeniser's settings,
the n-gram features and the padding, and the class names, all as plain types: a checkpoint
holding its :meth:`~TextFeaturizer.state_dict` loads with ``torch.load(weights_only=True)`` and
classifies raw text with no dataset, token cache or ``conf/`` beside it. Training, evaluation
and prediction all encode text through this one class, so preprocessing can never drift
between them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from embedclf.text.ngrams import hashed_ngrams
from embedclf.text.ragged import Ragged
from embedclf.text.tokenizer import SIDES, WordLookup, pad_ragged
from embedclf.util.errors import CheckpointError

FEATURIZER_FORMAT = 1
# bounds a checkpoint's encoder must keep: it is data, and sizes in it become allocations
MAX_FEATURES = 1 << 20
MAX_NGRAMS = 5


@dataclass
class TextFeaturizer:
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

    @property
    def id_dtype(self) -> type[np.integer]:
        """The narrowest integer type that holds every feature id."""
        return np.int32 if self.input_size < 2**31 else np.int64

    @cached_property
    def word_index(self) -> dict[str, int]:
        """word -> id, built once (a predictor encodes many batches with it)."""
        return {word: i for i, word in enumerate(self.vocab) if i}

    @cached_property
    def word_lookup(self) -> WordLookup:
        """The vocabulary's lookup, its hash table built once like :attr:`word_index`."""
        return WordLookup(self.word_index, keep_table=True)

    def word_ids(self, texts: Sequence[str]) -> Ragged:
        return self.word_lookup.ids(texts, self.filters, self.lower)

    def features(self, ids: Ragged) -> Ragged:
        return hashed_ngrams(ids, self.ngrams, self.buckets, len(self.vocab))

    @property
    def features_per_word(self) -> int:
        """At most this many features per word: the word, and the n-grams ending at it when
        n-grams are hashed (``ngrams > 1`` into ``buckets > 0``)."""
        return self.ngrams if self.ngrams > 1 and self.buckets > 0 else 1

    @property
    def word_window(self) -> int:
        """Words of a row that decide its features: ``maxlen``, and the ``ngrams - 1`` words
        before them that the first kept n-grams start from."""
        return self.maxlen + self.features_per_word - 1

    def window(self, ids: Ragged) -> Ragged:
        """Word ids of the vocabulary only (a ``num_words`` limit), each row cut to the
        :attr:`word_window` its features come from: the same features, from fewer ids."""
        words = len(self.vocab)
        if len(ids.flat) and int(ids.flat.max()) >= words:
            ids = ids.keep(np.asarray(ids.flat) < words)
        return ids.truncate(self.word_window, self.truncating)

    def batch(self, ids: Ragged) -> Ragged:
        """Each row's features (words, then n-grams) cut to ``maxlen``: what :meth:`pad` pads,
        and what bag encoders take without padding."""
        # cut as they are hashed (without n-grams: the window cut)
        return hashed_ngrams(
            self.window(ids),
            self.ngrams,
            self.buckets,
            len(self.vocab),
            self.maxlen,
            self.truncating,
        )

    def pad(self, features: Ragged) -> np.ndarray:
        return pad_ragged(features, self.maxlen, self.padding, self.truncating, dtype=self.id_dtype)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), maxlen)`` ids, ready for the model."""
        return self.pad(self.features(self.word_ids(texts)))

    def digest(self) -> str:
        """A short hash of everything that decides the ids (a cache key)."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def state_dict(self) -> dict[str, Any]:
        # the fields themselves, not asdict's deep copies: copying a 10^6-word vocabulary took
        # a tenth of a second of each checkpoint write, and the state is only written out
        return {
            "format": FEATURIZER_FORMAT,
            **{f.name: getattr(self, f.name) for f in fields(self)},
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any], where: str = "checkpoint") -> TextFeaturizer:
        if not isinstance(state, Mapping) or state.get("format") != FEATURIZER_FORMAT:
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
            and encoder.padding in SIDES
            and encoder.truncating in SIDES
        ):
            raise CheckpointError(f"{where} holds a malformed text encoder")
        return encoder
