import platform

import numba
import numpy as np

from embedclf.util.prefetch import prefetch


@numba.njit
def _rows_summed(table, rows, ahead):
    total = 0.0
    for k in range(rows.shape[0]):
        prefetch(table, rows[k] + ahead)  # past the end too: a hint never faults
        total += table[rows[k], 0]
    return total


@numba.njit
def _items_summed(flat, items, ahead):
    total = 0
    for k in range(items.shape[0]):
        prefetch(flat, items[k])  # an int32 index as it is
        prefetch(flat, items[k] + ahead)
        total += flat[items[k]]
    return total


def test_a_prefetch_compiles_into_a_loop_and_changes_nothing_even_past_the_end():
    table = np.arange(40.0).reshape(20, 2)
    rows = np.array([3, 19, 0, 7], dtype=np.int64)
    flat = np.arange(10, dtype=np.int32)
    for ahead in (0, 1, 1 << 40):
        assert _rows_summed(table, rows, ahead) == 6.0 + 38.0 + 0.0 + 14.0
        assert _items_summed(flat, np.array([2, 9], dtype=np.int32), ahead) == 11


def test_the_hint_is_an_instruction_of_the_compiled_loop():
    _items_summed(np.zeros(2, np.int32), np.zeros(1, np.int32), 0)
    signature = _items_summed.signatures[0]
    assert "llvm.prefetch" in _items_summed.inspect_llvm(signature)
    if platform.machine() in ("x86_64", "AMD64"):
        assert "prefetcht0" in _items_summed.inspect_asm(signature)
