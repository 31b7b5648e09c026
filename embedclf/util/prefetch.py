"""A numba intrinsic that asks the CPU to start loading a cache line: the kernels that read
rows at random (``models/row_kernels.py``, ``text/ragged.py``, ``text/word_table.py``) ask for
them a few iterations ahead, where they otherwise wait on memory one row at a time.

numba's on-disk cache (``cache=True``) checks only a kernel's own file: after an edit here,
delete those modules' ``__pycache__`` entries, or their kernels keep the old hint."""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

_BYTE_POINTER = ir.IntType(8).as_pointer()
# LLVM names the intrinsic for its argument's pointer type itself ("p0" in LLVM 22)
_PREFETCH = "llvm.prefetch.p0"


@intrinsic
def prefetch(typingctx, array, row):  # pragma: no cover - compiled into the kernels
    """A hint that ``array[row]`` (its first item) will be read soon: the CPU starts loading
    its cache line and goes on. Never faults, whatever ``row`` is; changes no result."""
    sig = types.void(array, row)

    def codegen(context, builder, signature, args):
        kind, index = signature.args
        view = context.make_array(kind)(context, builder, args[0])
        at = context.cast(builder, args[1], index, types.intp)
        first = [at] + [context.get_constant(types.intp, 0)] * (kind.ndim - 1)
        pointer = cgutils.get_item_pointer(context, builder, kind, view, first, wraparound=False)
        i32 = ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [_BYTE_POINTER, i32, i32, i32]),
            _PREFETCH,
        )
        # read (0), kept in every cache level (3), data (1)
        flags = [ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)]
        builder.call(hint, [builder.bitcast(pointer, _BYTE_POINTER), *flags])
        return context.get_dummy_value()

    return sig, codegen
