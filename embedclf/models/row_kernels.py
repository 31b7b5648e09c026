"""Numba kernels for the row-sparse bag's gradient and Adagrad's row update, on the CPU.

``experiment=ngram`` spends its fit in two places (``torch.profiler``, IMDB, a 512-review
batch of about 230,000 features over 78,000 distinct rows of a 2.2M-row table):

- **summing the gradient per distinct row.** Tensor ops must materialise each occurrence's
  share (``grad[bags] * weights``) and scatter it (``index_add_``, which sorts the index):
  15 ms a batch. One pass over the occurrences, adding each share straight into its row's
  slot, takes about 3 ms.
- **the update.** Adagrad as gathers, arithmetic and copies reads and writes each row's
  values four times over (11 ms a batch); fused per row, once (1-2 ms).

These are the loops fastText runs in C++; numba compiles them from Python (``cache=True``: once
per machine, into ``__pycache__``). The arithmetic is the tensor path's, so results equal it up
to the order of floating-point sums (``tests/models/test_sparse_rows.py``). GPU tensors keep
the tensor path.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import torch

from embedclf.util.prefetch import prefetch

_scratch = threading.local()

# rows read this many features (or rows) ahead of the one in hand are asked for beforehand:
# the loops wait on memory, one table row at a time (the 1M set's forward pass, 1.1 -> 0.75 ms
# a batch; 16 to 32 measured alike, 8 and 48 slower)
_AHEAD = 24


@numba.njit(cache=True, nogil=True, parallel=True)
def _weighted_bags(table, flat, offsets, feature_weight, by_weight, pooled, weights):
    # each bag's features weighted by feature_weight over the bag's count (or over the weights'
    # sum), in the division order of the tensor path, and their rows summed
    dim = table.shape[1]
    for b in numba.prange(offsets.shape[0] - 1):
        start, stop = offsets[b], offsets[b + 1]
        if by_weight:
            total = feature_weight.dtype.type(0)
            for i in range(start, stop):
                total += feature_weight[flat[i]]
            total = max(total, feature_weight.dtype.type(1e-8))
        else:
            total = feature_weight.dtype.type(max(stop - start, 1))
        for i in range(start, stop):
            if i + _AHEAD < flat.shape[0]:
                ahead = flat[i + _AHEAD]
                prefetch(table, ahead)
                prefetch(feature_weight, ahead)
            row = flat[i]
            w = feature_weight[row] / total
            weights[i] = w
            for j in range(dim):
                pooled[b, j] += w * table[row, j]


_ONE = np.uint64(1)
_M1, _M2 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333)
_M4, _H01 = np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(0x0101010101010101)


@numba.njit(inline="always")
def _popcount(x):  # pragma: no cover - jit
    # set bits of a uint64, summed in pairs, nibbles, then bytes (all uint64: numba makes a
    # mix of int64 and uint64 a float)
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return np.int64((x * _H01) >> np.uint64(56))


@numba.njit(cache=True, nogil=True, parallel=True)
def _rows_gradient(flat, offsets, weights, grad, bits, below, parts):  # pragma: no cover
    # 1. one bit per table row, set for each id (`bits`: all 0 between calls), on one thread:
    #    threads setting bits of the same words would race. A bit, not a byte, per row: the
    #    marks of a 2.6M-row table are 325 KB, which stay in cache, where bytes took 2.6 MB
    for i in range(flat.shape[0]):
        r = flat[i]
        bits[r >> 6] |= _ONE << np.uint64(r & 63)
    # 2. the marked rows, ascending, and for each word the count of marked rows before it
    #    (`below`): a count per stretch of words, then each stretch fills its own part
    words = bits.shape[0]
    stretch = -(-words // parts)
    counts = np.zeros(parts + 1, np.int64)
    for p in numba.prange(parts):
        n = np.int64(0)
        for q in range(p * stretch, min((p + 1) * stretch, words)):
            n += _popcount(bits[q])
        counts[p + 1] = n
    starts = np.cumsum(counts)
    distinct = np.empty(starts[parts], np.int64)
    for p in numba.prange(parts):
        k = starts[p]
        for q in range(p * stretch, min((p + 1) * stretch, words)):
            below[q] = k
            x = bits[q]
            while x != 0:
                low = x & (~x + _ONE)  # the lowest set bit alone; its index: the bits below it
                distinct[k] = q * 64 + _popcount(low - _ONE)
                k += 1
                x ^= low
    # 3. each occurrence's slot, its row's rank among the marked rows (the marks before it:
    #    `below` its word, and its word's bits below its own), then the marks cleared
    dim = grad.shape[1]
    bags = offsets.shape[0] - 1
    n = distinct.shape[0]
    occurs = np.empty(flat.shape[0], np.int32)
    for p in numba.prange(parts):
        for i in range(offsets[bags * p // parts], offsets[bags * (p + 1) // parts]):
            r = flat[i]
            q = r >> 6
            occurs[i] = below[q] + _popcount(bits[q] & ((_ONE << np.uint64(r & 63)) - _ONE))
    for p in numba.prange(parts):
        for q in range(p * stretch, min((p + 1) * stretch, words)):
            bits[q] = 0
    # 4. each occurrence's share into its row's slot. Each thread owns a range of the slots and
    #    adds, in occurrence order, the shares that fall in it: no thread writes another's rows,
    #    and each row's sum has the same order whatever the thread count
    values = np.zeros((n, dim), grad.dtype)
    for p in numba.prange(parts):
        low, high = n * p // parts, n * (p + 1) // parts
        for b in range(bags):
            g = grad[b]
            for i in range(offsets[b], offsets[b + 1]):
                at = occurs[i]
                if low <= at < high:
                    w = weights[i]
                    for j in range(dim):
                        values[at, j] += w * g[j]
    return distinct, values


@numba.njit(cache=True, nogil=True, parallel=True)
def _adagrad_rows(param, state, rows, values, clr, eps):  # pragma: no cover - jit
    dim = param.shape[1]
    for k in numba.prange(rows.shape[0]):
        if k + _AHEAD < rows.shape[0]:
            prefetch(param, rows[k + _AHEAD])
            prefetch(state, rows[k + _AHEAD])
        r = rows[k]
        for j in range(dim):
            g = values[k, j]
            total = state[r, j] + g * g
            state[r, j] = total
            param[r, j] -= clr * g / (np.sqrt(total) + eps)


def _share_cores() -> None:
    """numba's threads as many as torch's: under DDP each process has its share of the cores."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _tables(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's marks (a bit per row, all 0 between calls) and per-word counts for a
    table of ``rows``."""
    held = getattr(_scratch, "tables", None)
    if held is None or held[0] != rows:
        words = -(-rows // 64)
        held = (rows, np.zeros(words, dtype=np.uint64), np.empty(words, dtype=np.int64))
        _scratch.tables = held
    return held[1], held[2]


def weighted_bags(
    table: torch.Tensor,
    flat: torch.Tensor,
    offsets: torch.Tensor,
    feature_weight: torch.Tensor,
    by_weight: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(len(offsets) - 1, dim)`` sums of ``table``'s rows per bag, each row weighted by
    ``feature_weight[id]`` over the bag's feature count (over its weights' sum when
    ``by_weight``), and those per-feature weights; ids must lie in the table."""
    ids = flat.numpy()
    if len(ids) and (ids.min() < 0 or ids.max() >= table.shape[0]):
        raise IndexError(f"a feature id lies outside the {table.shape[0]}-row table")
    _share_cores()
    pooled = torch.zeros(len(offsets) - 1, table.shape[1], dtype=table.dtype)
    weights = torch.empty(len(flat), dtype=feature_weight.dtype)
    _weighted_bags(
        table.detach().numpy(),
        ids,
        offsets.numpy(),
        feature_weight.numpy(),
        by_weight,
        pooled.numpy(),
        weights.numpy(),
    )
    return pooled, weights


def rows_gradient(
    flat: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor, grad: torch.Tensor, rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct ids of ``flat`` (ascending) and, for each, the sum of ``weights[i] *
    grad[bag of i]`` over its occurrences; ``offsets`` has ``len(grad) + 1`` entries."""
    bits, below = _tables(rows)
    _share_cores()
    distinct, values = _rows_gradient(
        flat.numpy(),
        offsets.numpy(),
        weights.to(grad.dtype).numpy(),
        grad.contiguous().numpy(),
        bits,
        below,
        numba.get_num_threads(),
    )
    return torch.from_numpy(distinct), torch.from_numpy(values)


def adagrad_rows(
    param: torch.Tensor,
    state_sum: torch.Tensor,
    rows: torch.Tensor,
    values: torch.Tensor,
    clr: float,
    eps: float,
) -> None:
    """Adagrad's update of ``param``'s ``rows`` (distinct) in place: ``sum += g * g``, then
    ``param -= clr * g / (sqrt(sum) + eps)``, with ``values`` the rows' gradients."""
    _share_cores()
    table = param.detach().numpy()
    scalar = table.dtype.type  # the table's precision throughout, as torch's update has it
    _adagrad_rows(
        table,
        state_sum.numpy(),
        rows.numpy(),
        values.contiguous().numpy(),
        scalar(clr),
        scalar(eps),
    )


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the kernels can take these tensors: on the CPU, dense, floats of 32 or 64 bits."""
    return all(t.device.type == "cpu" and not t.is_sparse for t in tensors) and all(
        t.dtype in (torch.float32, torch.float64) for t in tensors if t.is_floating_point()
    )
