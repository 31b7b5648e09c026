"""A batch's flat ids padded where an encoder needs them (data/batches.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import flat_rows
from embedclf.data.batches import Tokens
from embedclf.text.tokenizer import pad_sequences


def rows_of(rng: np.random.Generator, n: int, longest: int) -> list[list[int]]:
    """``n`` rows of 0 to ``longest`` ids (none of them padding), empty rows included."""
    return [list(rng.integers(1, 50, size=rng.integers(0, longest + 1))) for _ in range(n)]


@pytest.mark.parametrize("padding", ["pre", "post"])
def test_padded_rows_are_keras_pad_sequences_of_them(padding):
    rng = np.random.default_rng(0)
    for n, longest in [(1, 1), (7, 5), (40, 12), (3, 0)]:
        rows = rows_of(rng, n, longest)
        tokens = flat_rows(rows, padding)
        for width in (None, 12, 15):
            cut = width or max(max(map(len, rows)), 1)
            expected = pad_sequences(rows, cut, padding=padding)
            np.testing.assert_array_equal(tokens.padded(width).numpy(), expected)
    # the parts of a split batch (offsets rebased, flat sliced) pad as the rows they hold
    rows = rows_of(rng, 30, 9)
    for part, chunk in zip(flat_rows(rows, padding).split(8), range(0, 30, 8), strict=True):
        expected = pad_sequences(rows[chunk : chunk + 8], 9, padding=padding)
        np.testing.assert_array_equal(part.padded(9).numpy(), expected)


def test_padded_of_no_rows_and_rows_that_do_not_fit():
    empty = Tokens(torch.zeros(0, dtype=torch.int64), torch.zeros(1, dtype=torch.int64))
    assert empty.padded().shape == (0, 1) and empty.padded(4).shape == (0, 4)
    with pytest.raises(ValueError, match="a row of 3 ids does not fit a width of 2"):
        flat_rows([[1], [2, 3, 4]], "pre").padded(2)
