"""A checkpoint's vocabulary as two tensors: its words' UTF-8 bytes, and their lengths.

``torch.load(weights_only=True)`` unpickles a list of strings one element at a time, in
Python: a 1.1M-word vocabulary (the 1M synthetic set's) took 2.0 s to read, and IMDB's 89k
words 0.16 s of a 0.26 s load, each time a checkpoint is scored, predicted with or evaluated;
writing it took 0.35 s. As two tensors it is two storages and one decode: 0.13 s to read and
0.06 s to write. Checkpoints that hold the list (every one written before this) read as before.
Words may hold lone surrogates (the tokeniser keeps what the text had), so the bytes are
``surrogatepass`` UTF-8, and the lengths count code points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from embedclf.util.errors import CheckpointError

TEXT, LENGTHS = "utf8", "lengths"


def packed(state: Mapping[str, Any]) -> dict[str, Any]:
    """A featurizer's state (``TextFeaturizer.state_dict``) with its vocabulary packed."""
    words = state["vocab"]
    data = "".join(words).encode("utf-8", "surrogatepass")
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    text = torch.from_numpy(np.frombuffer(bytearray(data), dtype=np.uint8))  # empty too
    return {**state, "vocab": {TEXT: text, LENGTHS: torch.from_numpy(lengths)}}


def unpack_vocab(state: Any, where: str) -> None:
    """Turn a packed vocabulary in a featurizer's state back into its list of words, in place
    (a list, or anything else, is left for ``TextFeaturizer.from_state_dict`` to check)."""
    if not isinstance(state, dict) or not isinstance(state.get("vocab"), Mapping):
        return
    vocab = state["vocab"]
    text, lengths = vocab.get(TEXT), vocab.get(LENGTHS)
    if not (
        set(vocab) == {TEXT, LENGTHS}
        and _plain(text, torch.uint8)
        and _plain(lengths, torch.int64)
        and bool((lengths >= 0).all())
    ):
        raise CheckpointError(f"{where} holds a malformed vocabulary")
    try:
        words = text.numpy().tobytes().decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as err:
        raise CheckpointError(
            f"{where} holds a vocabulary that is not UTF-8 (byte {err.start})"
        ) from None
    ends = np.cumsum(lengths.numpy())
    # lengths near 2^63 wrap the running sum around, which could land on a matching total;
    # the lengths being non-negative, the first wrap gives a negative sum
    if len(ends) and ends.min() < 0:
        raise CheckpointError(f"{where} holds a malformed vocabulary: its lengths overflow")
    total = int(ends[-1]) if len(ends) else 0
    if total != len(words):
        raise CheckpointError(
            f"{where} holds a malformed vocabulary: its lengths add up to {total} characters, "
            f"its text has {len(words)}"
        )
    starts = np.concatenate([[0], ends[:-1]]).tolist()
    state["vocab"] = [words[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]


def _plain(value: Any, dtype: torch.dtype) -> bool:
    """A dense, contiguous 1-d CPU tensor of ``dtype``: its memory is what the file holds (a
    loaded tensor may also be sparse, on the meta device, or a stride-0 view of a few bytes
    that claims terabytes)."""
    return (
        type(value) is torch.Tensor
        and value.layout == torch.strided
        and value.device.type == "cpu"
        and value.dtype == dtype
        and value.dim() == 1
        and value.is_contiguous()
    )
