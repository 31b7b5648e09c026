"""The network and the LightningModule: shapes, initialisation, freezing, a training step."""

import numpy as np
import pytest
import torch

from embedclf.model import EmbeddingClassifier
from embedclf.module import EmbeddingClassifierModule


def make_module(**kwargs) -> EmbeddingClassifierModule:
    args = dict(
        vocab_size=30,
        seq_len=5,
        num_classes=2,
        embedding_dim=4,
        hidden=[3],
        optimizer={"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": 0.01},
    )
    args.update(kwargs)
    return EmbeddingClassifierModule(**args)


def one_step(module: EmbeddingClassifierModule) -> None:
    """One optimiser step by hand, exactly what Lightning's loop does for this module."""
    optimizer = module.configure_optimizers()["optimizer"]
    ids = torch.randint(0, 30, (8, 5))
    labels = torch.tensor([0, 1] * 4)
    logits = module(ids)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def test_frozen_embedding_is_unchanged_by_a_training_step():
    init = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    module = make_module(embedding_init=init, freeze_embedding=True)
    head_before = module.net.head[1].weight.detach().clone()
    one_step(module)
    np.testing.assert_array_equal(module.net.embedding.weight.detach().numpy(), init)
    assert not torch.equal(module.net.head[1].weight, head_before)  # the head did learn
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    assert "net.embedding.weight" not in trainable


def test_trainable_embedding_changes_after_a_training_step():
    init = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    module = make_module(embedding_init=init, freeze_embedding=False)
    one_step(module)
    assert not np.array_equal(module.net.embedding.weight.detach().numpy(), init)


def test_keras_initialisation_ranges():
    torch.manual_seed(0)
    net = EmbeddingClassifier(1000, 8, 20, hidden=[32])
    emb = net.embedding.weight
    assert emb.abs().max() <= 0.05 and emb.std() > 0.02
    dense = net.head[1]
    limit = (6 / (dense.in_features + dense.out_features)) ** 0.5  # Glorot uniform
    assert dense.weight.abs().max() <= limit and dense.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(dense.bias) == 0


def test_binary_has_one_logit_multiclass_one_per_class():
    ids = torch.randint(0, 50, (4, 6))
    assert EmbeddingClassifier(50, 3, 6, num_classes=2)(ids).shape == (4,)
    assert EmbeddingClassifier(50, 3, 6, num_classes=5, hidden=[7])(ids).shape == (4, 5)


def test_embedding_init_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="embedding_init has shape"):
        EmbeddingClassifier(50, 3, 6, embedding_init=np.zeros((50, 4), np.float32))


def test_parameters_given_to_the_optimiser_exclude_frozen_ones():
    module = make_module(freeze_embedding=True)
    optimizer = module.configure_optimizers()["optimizer"]
    given = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(module.net.embedding.weight) not in given
    assert len(given) == 4  # two dense layers, weight and bias each


def test_mean_pooling_ignores_padding_and_position():
    torch.manual_seed(0)
    net = EmbeddingClassifier(50, 4, 6, pooling="mean")
    a = torch.tensor([[0, 0, 0, 3, 7, 9]])
    b = torch.tensor([[9, 3, 7, 0, 0, 0]])  # same words, other order, padding after
    c = torch.tensor([[0, 0, 0, 0, 3, 7]])  # one word fewer
    assert torch.allclose(net(a), net(b)) and not torch.allclose(net(a), net(c))
    # a longer sequence needs no more parameters
    assert sum(p.numel() for p in net.parameters()) == sum(
        p.numel() for p in EmbeddingClassifier(50, 4, 600, pooling="mean").parameters()
    )


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match=r"model\.pooling"):
        EmbeddingClassifier(50, 4, 6, pooling="max")
