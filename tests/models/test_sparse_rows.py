"""The row-sparse Adagrad (models/sparse_rows.py): torch.optim.Adagrad's arithmetic and state,
updating only the rows a batch touched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from embedclf.models import row_kernels
from embedclf.models.sparse_rows import RowSparseAdagrad, bag_of_rows, bag_weights
from embedclf.models.specs import OPTIMIZER_MODULE, spec_class
from embedclf.util.errors import ConfigError

ROWS, DIM = 300, 4


def batches(count: int = 6):
    generator = torch.Generator().manual_seed(0)
    for _ in range(count):
        lengths = torch.randint(0, 12, (8,), generator=generator)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        flat = torch.randint(1, 40, (int(offsets[-1]),), generator=generator)  # repeats
        yield flat, offsets, torch.rand(ROWS, generator=generator)  # a weight per feature id


def train(optimizer_class, steps: int = 6, state: dict | None = None, **settings):
    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(ROWS, DIM))
    head = torch.nn.Linear(DIM, 1)
    optimizer = optimizer_class([table, *head.parameters()], lr=0.3, **settings)
    if state is not None:
        optimizer.load_state_dict(state)
    for flat, offsets, feature_weight in batches(steps):
        optimizer.zero_grad()
        if optimizer_class is RowSparseAdagrad:
            vectors = bag_of_rows(table, flat, offsets, feature_weight)
        else:  # PyTorch's own sparse path: one gradient row per occurrence
            lengths = (offsets[1:] - offsets[:-1]).clamp(min=1)
            bags = torch.repeat_interleave(torch.arange(8), offsets[1:] - offsets[:-1])
            weights = feature_weight[flat] / lengths[bags]
            vectors = F.embedding_bag(
                flat, table, offsets[:-1], mode="sum", per_sample_weights=weights, sparse=True
            )
        target = feature_weight[:8] * 0
        F.binary_cross_entropy_with_logits(head(vectors).squeeze(-1), target).backward()
        optimizer.step()
    return table.detach(), head.weight.detach(), optimizer


@pytest.fixture(params=["kernels", "tensor ops"])
def path(request, monkeypatch):
    """Each test on the CPU's numba kernels and on the tensor path that GPUs take."""
    if request.param == "tensor ops":
        monkeypatch.setattr(row_kernels, "usable", lambda *tensors: False)
    return request.param


@pytest.mark.parametrize("settings", [{}, {"lr_decay": 0.1, "initial_accumulator_value": 0.1}])
def test_row_sparse_adagrad_takes_adagrads_steps(settings, path):
    theirs, their_head, their_optimizer = train(torch.optim.Adagrad, **settings)
    ours, our_head, our_optimizer = train(RowSparseAdagrad, **settings)
    assert not torch.equal(ours, torch.randn(ROWS, DIM))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    torch.testing.assert_close(our_head, their_head, rtol=0, atol=1e-6)
    for key in ("sum", "step"):
        torch.testing.assert_close(
            our_optimizer.state_dict()["state"][0][key],
            their_optimizer.state_dict()["state"][0][key],
            rtol=0,
            atol=1e-6,
        )


def test_rows_no_batch_touched_stay_as_drawn(path):
    ours, _, optimizer = train(RowSparseAdagrad)
    torch.manual_seed(0)
    drawn = torch.randn(ROWS, DIM)
    untouched = optimizer.state[optimizer.param_groups[0]["params"][0]]["sum"].eq(0).all(1)
    assert untouched[40:].all() and not untouched[1:40].all()
    assert torch.equal(ours[untouched], drawn[untouched])


def test_an_uncoalesced_gradient_is_summed_first():
    table = torch.nn.Parameter(torch.zeros(5, 2))
    optimizer = RowSparseAdagrad([table], lr=1.0)
    # row 3 twice: Adagrad's update of a row is not linear, so the two must be summed first
    table.grad = torch.sparse_coo_tensor([[3, 1, 3]], torch.ones(3, 2), (5, 2))
    optimizer.step()
    reference = torch.nn.Parameter(torch.zeros(5, 2))
    torch_optimizer = torch.optim.Adagrad([reference], lr=1.0)
    reference.grad = torch.sparse_coo_tensor([[3, 1, 3]], torch.ones(3, 2), (5, 2))
    torch_optimizer.step()
    torch.testing.assert_close(table.detach(), reference.detach())
    ours, theirs = optimizer.state[table]["sum"], torch_optimizer.state[reference]["sum"]
    torch.testing.assert_close(ours, theirs)
    assert ours[3].tolist() == [4.0, 4.0]  # (1 + 1) squared
    assert table.grad is not None  # the gradient is the caller's again after the step


def test_a_checkpoint_of_either_optimiser_resumes_in_the_other(path):
    _, _, first = train(torch.optim.Adagrad, steps=3)
    resumed, _, _ = train(RowSparseAdagrad, steps=3, state=first.state_dict())
    _, _, again = train(RowSparseAdagrad, steps=3)
    straight, _, _ = train(torch.optim.Adagrad, steps=3, state=again.state_dict())
    torch.testing.assert_close(resumed, straight, rtol=0, atol=1e-6)


def test_weight_decay_on_a_sparse_gradient_is_refused_as_adagrad_does():
    table = torch.nn.Parameter(torch.zeros(5, 2))
    optimizer = RowSparseAdagrad([table], weight_decay=0.1)
    table.grad = torch.sparse_coo_tensor([[1]], torch.ones(1, 2), (5, 2))
    with pytest.raises(RuntimeError, match="weight_decay"):
        optimizer.step()


def test_specs_may_name_it_but_nothing_else_of_the_project():
    name = "embedclf.models.sparse_rows.RowSparseAdagrad"
    assert spec_class({"_target_": name}, OPTIMIZER_MODULE, torch.optim.Optimizer) is (
        RowSparseAdagrad
    )
    for target in ("embedclf.models.sparse_rows.bag_of_rows", "embedclf.util.fileio.Path"):
        with pytest.raises(ConfigError, match="is not a Optimizer"):
            spec_class({"_target_": target}, OPTIMIZER_MODULE, torch.optim.Optimizer)


def bag_and_gradient(table, flat, offsets, feature_weight, grad, by_weight):
    table = table.clone().requires_grad_(True)
    pooled = bag_of_rows(table, flat, offsets, feature_weight, by_weight)
    pooled.backward(grad)
    return pooled.detach(), table.grad


@pytest.mark.parametrize("by_weight", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_kernels_bags_and_gradient_are_the_tensor_paths(dtype, by_weight, monkeypatch):
    generator = torch.Generator().manual_seed(1)
    rows = 1003  # not a multiple of 64: the marks are a bit per row, read a word at a time
    table = torch.randn(rows, 5, generator=generator, dtype=dtype)
    feature_weight = torch.rand(rows, generator=generator, dtype=dtype)
    for _ in range(3):  # the marks must be clear again after each call
        lengths = torch.randint(0, 300, (37,), generator=generator)
        lengths[5] = 0  # an empty bag
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        flat = torch.randint(0, rows, (int(offsets[-1]),), generator=generator)
        flat[:50] = rows - 1  # the last row, many times over
        grad = torch.randn(len(lengths), 5, generator=generator, dtype=dtype)
        args = (table, flat, offsets, feature_weight, grad, by_weight)
        pooled, ours = bag_and_gradient(*args)
        rows_of = ours._indices()[0]
        assert bool((rows_of[1:] > rows_of[:-1]).all())  # ascending, each once: coalesced
        with monkeypatch.context() as patch:
            patch.setattr(row_kernels, "usable", lambda *tensors: False)
            their_pooled, theirs = bag_and_gradient(*args)
        torch.testing.assert_close(pooled, their_pooled)
        assert torch.equal(ours._indices(), theirs._indices())
        assert ours._indices()[0, -1] == rows - 1
        assert ours._values().dtype == dtype
        torch.testing.assert_close(ours._values(), theirs._values())
        # the arithmetic written out: per-feature weights, their bags' rows, sums
        weights = bag_weights(feature_weight, flat, offsets, by_weight)
        bags = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
        expected = torch.zeros(len(lengths), 5, dtype=dtype).index_add_(
            0, bags, table[flat] * weights.unsqueeze(1)
        )
        torch.testing.assert_close(pooled, expected)
        assert pooled[5].abs().sum() == 0
        dense = torch.zeros(rows, 5, dtype=dtype).index_add_(
            0, flat, grad[bags] * weights.unsqueeze(1)
        )
        torch.testing.assert_close(ours.to_dense(), dense)


def test_the_gradients_rows_are_right_where_ids_are_sparse_in_a_large_table():
    # few ids over many rows (as a batch's hashed bigrams over 2^21 buckets): the threads'
    # stretches of the marks end in words with unmarked bits, whose rows must not be taken
    generator = torch.Generator().manual_seed(2)
    rows = 200_003
    table = torch.randn(rows, 3, generator=generator)
    feature_weight = torch.rand(rows, generator=generator)
    for _ in range(5):
        lengths = torch.randint(0, 200, (16,), generator=generator)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        flat = torch.randint(0, rows, (int(offsets[-1]),), generator=generator)
        grad = torch.randn(len(lengths), 3, generator=generator)
        _, ours = bag_and_gradient(table, flat, offsets, feature_weight, grad, False)
        assert torch.equal(ours._indices()[0], torch.unique(flat))
        weights = bag_weights(feature_weight, flat, offsets, False)
        bags = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
        dense = torch.zeros(rows, 3).index_add_(0, flat, grad[bags] * weights.unsqueeze(1))
        torch.testing.assert_close(ours.to_dense(), dense)


@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_the_marks_give_each_row_its_rank_at_every_bit_of_a_word(parts, monkeypatch):
    # ids at each bit of a word (63: its top bit), at words' edges, in the last part word,
    # repeated and out of order, with the marks' words split into 1 to 7 stretches
    generator = torch.Generator().manual_seed(3)
    rows = 64 * 5 + 7
    edges = [63, 0, 64, 127, 128, 191, rows - 1, 63, 5, 255, 256, 319, 320, 64]
    flat = torch.tensor(edges + list(range(rows - 1, -1, -3)) + list(range(64)))
    offsets = torch.tensor([0, 7, len(edges), len(flat) - 64, len(flat)])
    weights = torch.rand(len(flat), generator=generator)
    grad = torch.randn(4, 3, generator=generator)
    monkeypatch.setattr(row_kernels.numba, "get_num_threads", lambda: parts)
    for _ in range(2):  # the marks cleared after each call
        distinct, values = row_kernels.rows_gradient(flat, offsets, weights, grad, rows)
        assert torch.equal(distinct, torch.unique(flat))
        bags = torch.repeat_interleave(torch.arange(4), offsets[1:] - offsets[:-1])
        dense = torch.zeros(rows, 3).index_add_(0, flat, grad[bags] * weights.unsqueeze(1))
        torch.testing.assert_close(values, dense[distinct])


def test_an_id_outside_the_table_is_refused_before_the_kernel_reads_it():
    table = torch.zeros(10, 2, requires_grad=True)
    with pytest.raises(IndexError, match="10-row table"):
        bag_of_rows(table, torch.tensor([3, 10]), torch.tensor([0, 2]), torch.ones(10))
    with pytest.raises(IndexError, match="10-row table"):
        bag_of_rows(table, torch.tensor([-1]), torch.tensor([0, 1]), torch.ones(10))
