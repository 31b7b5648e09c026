"""Training a large embedding table row by row: a bag lookup whose gradient holds one row per
distinct id, and an Adagrad that reads and writes only those rows.

``experiment=ngram`` looks 2^21 hashed bigram rows up, a few hundred thousand per batch.
PyTorch's own path spends most of a step sorting: ``nn.EmbeddingBag``'s backward sorts the
batch's ids, ``torch.unique`` sorts them again, and ``torch.optim.Adagrad`` coalesces the
sparse gradient (a third sort) and updates the table through sparse additions to the dense
table and its state. Here the distinct ids are found by marking them in a boolean table (linear,
no sort), the gradient comes out coalesced, and :class:`RowSparseAdagrad` updates those rows
with gathers and copies. On the CPU both steps are numba loops (``models/row_kernels.py``),
several times faster again. The arithmetic is Adagrad's: equal to ``torch.optim.Adagrad`` up
to the order of floating-point sums (``tests/models/test_sparse_rows.py``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from embedclf.models import row_kernels


def bag_weights(
    feature_weight: torch.Tensor, flat: torch.Tensor, offsets: torch.Tensor, by_weight: bool
) -> torch.Tensor:
    """Each feature's weight in its bag: ``feature_weight[id]`` over the bag's feature count,
    or over the bag's weights' sum when ``by_weight``."""
    lengths = offsets[1:] - offsets[:-1]
    # index_select, not [] indexing: a third of the time on a batch's 10^5 features
    weights = feature_weight.index_select(0, flat)
    if by_weight:
        rows = torch.repeat_interleave(torch.arange(len(lengths), device=flat.device), lengths)
        total = torch.zeros(len(lengths), device=flat.device, dtype=weights.dtype)
        total = total.index_add(0, rows, weights)
        return weights / total.clamp(min=1e-8).index_select(0, rows)
    share = lengths.clamp(min=1).to(weights.dtype)
    return weights / torch.repeat_interleave(share, lengths, output_size=len(flat))


class _BagOfRows(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        table: torch.Tensor,
        flat: torch.Tensor,
        offsets: torch.Tensor,
        feature_weight: torch.Tensor,
        by_weight: bool,
    ) -> torch.Tensor:
        ctx.rows = table.shape[0]
        if row_kernels.usable(table, flat, feature_weight):
            pooled, weights = row_kernels.weighted_bags(
                table, flat, offsets, feature_weight, by_weight
            )
        else:
            weights = bag_weights(feature_weight, flat, offsets, by_weight)
            pooled = F.embedding_bag(
                flat, table, offsets[:-1], mode="sum", per_sample_weights=weights
            )
        ctx.save_for_backward(flat, offsets, weights)
        return pooled

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        flat, offsets, weights = ctx.saved_tensors
        if row_kernels.usable(flat, grad):
            distinct, values = row_kernels.rows_gradient(flat, offsets, weights, grad, ctx.rows)
            return _rows_of(distinct, values, ctx.rows), None, None, None, None
        # each occurrence's share of its bag's gradient, then summed per distinct id
        lengths = offsets[1:] - offsets[:-1]
        bags = torch.repeat_interleave(
            torch.arange(len(lengths), device=flat.device), lengths, output_size=len(flat)
        )
        shares = grad.index_select(0, bags).mul_(weights.unsqueeze(1).to(grad.dtype))
        seen = torch.zeros(ctx.rows, dtype=torch.bool, device=flat.device)
        seen[flat] = True
        distinct = seen.nonzero().squeeze(1)  # ascending: a coalesced index
        slot = torch.empty(ctx.rows, dtype=torch.int64, device=flat.device)
        slot[distinct] = torch.arange(len(distinct), device=flat.device)
        # index_add_, not index_put_(accumulate=True): parallel over rows, 40% faster here
        values = grad.new_zeros(len(distinct), grad.shape[1]).index_add_(0, slot[flat], shares)
        return _rows_of(distinct, values, ctx.rows), None, None, None, None


def _rows_of(distinct: torch.Tensor, values: torch.Tensor, rows: int) -> torch.Tensor:
    """The sparse gradient of a ``rows``-row table: ``values`` for the ascending ``distinct``."""
    # built here, ascending and in range: torch's invariant check (a pass over it) is not needed
    return torch.sparse_coo_tensor(
        distinct.unsqueeze(0),
        values,
        (rows, values.shape[1]),
        is_coalesced=True,
        check_invariants=False,
    )


def bag_of_rows(
    table: torch.Tensor,
    flat: torch.Tensor,
    offsets: torch.Tensor,
    feature_weight: torch.Tensor,
    by_weight: bool = False,
) -> torch.Tensor:
    """``F.embedding_bag(flat, table, offsets[:-1], mode="sum", per_sample_weights=w)``,
    ``(n, dim)`` for ``n + 1`` offsets, with ``w`` :func:`bag_weights`, whose gradient for
    ``table`` is sparse and coalesced, one row per distinct id of ``flat`` (``feature_weight``
    takes no gradient)."""
    return _BagOfRows.apply(table, flat, offsets, feature_weight.detach(), by_weight)


class RowSparseAdagrad(torch.optim.Adagrad):
    """``torch.optim.Adagrad`` (same settings, same state: checkpoints resume either way)
    whose sparse updates touch only the gradient's rows, by gather and copy.

    Dense gradients (the head's), and sparse ones over more than the rows, take Adagrad's own
    update.
    """

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        held = []
        for group in self.param_groups:
            for param in group["params"]:
                grad = param.grad
                if grad is not None and grad.is_sparse and grad.sparse_dim() == 1:
                    self._row_update(param, group)
                    held.append((param, param.grad))
                    param.grad = None  # Adagrad's own step skips it
        try:
            super().step()
        finally:
            for param, grad in held:
                param.grad = grad
        return loss

    def _row_update(self, param: torch.Tensor, group: dict[str, Any]) -> None:
        if group["weight_decay"]:
            raise RuntimeError("weight_decay option is not compatible with sparse gradients")
        state = self.state[param]
        state["step"] += 1
        clr = group["lr"] / (1 + (float(state["step"]) - 1) * group["lr_decay"])
        grad = param.grad
        rows = grad._indices()[0]
        # autograd drops the coalesced mark when it stores a gradient; strictly ascending rows
        # (bag_of_rows's) are coalesced all the same, and checking that is linear, not a sort
        if not (grad.is_coalesced() or bool((rows[1:] > rows[:-1]).all())):
            grad = grad.coalesce()
            rows = grad._indices()[0]
        values = grad._values()
        if group["maximize"]:
            values = -values
        if row_kernels.usable(param, values, state["sum"]) and param.dtype == values.dtype:
            row_kernels.adagrad_rows(param, state["sum"], rows, values, clr, group["eps"])
            return
        total = state["sum"].index_select(0, rows).addcmul_(values, values)
        state["sum"].index_copy_(0, rows, total)
        std = total.sqrt_().add_(group["eps"])
        param.index_copy_(0, rows, param.index_select(0, rows).addcdiv_(values, std, value=-clr))
