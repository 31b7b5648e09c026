"""Every encoder under the protocol: its width, what padding does to it, the registry, and the
one spec the network is built from."""

from __future__ import annotations

import pytest
import torch

from conftest import net_spec
from embedclf.models.classifier import EmbeddingClassifier
from embedclf.models.encoders import ENCODERS, Encoder, encoder_class

ORDERLESS = [kind for kind in ENCODERS if kind != "flatten"]


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_each_encoder_gives_out_dim_wide_vectors(kind):
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(40, 7, kind=kind, dim=5))
    assert isinstance(net.encoder, Encoder) and net.encoder.kind == kind
    vectors = net.encode(torch.randint(1, 40, (3, 7)))
    assert vectors.shape == (3, net.encoder.out_dim)
    assert net(torch.randint(1, 40, (3, 7))).shape == (3,)


@pytest.mark.parametrize("kind", ORDERLESS)
def test_padding_never_moves_an_orderless_encoders_logits(kind):
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(40, 9, 3, kind=kind, dim=5, init="torch"))
    if kind in ("bag", "weighted_mean"):  # weights other than 1 must not make padding count
        net.encoder.feature_weight.uniform_(0.5, 2.0)
    ids = torch.tensor([[5, 9, 3, 7]])
    padded = torch.tensor([[0, 0, 0, 5, 9, 3, 7, 0, 0]])  # before and after
    torch.testing.assert_close(net(padded), net(ids), rtol=0, atol=1e-6)
    assert not torch.allclose(net(torch.tensor([[5, 9, 3, 0]])), net(ids))  # words do count


def test_bag_weights_feature_counts_and_weighted_mean_weights_sum():
    net = EmbeddingClassifier(net_spec(10, 3, kind="bag", dim=2, init="torch"))
    other = EmbeddingClassifier(net_spec(10, 3, kind="weighted_mean", dim=2, init="torch"))
    for model in (net, other):
        with torch.no_grad():
            model.embedding.weight.copy_(torch.arange(20.0).view(10, 2))
            model.encoder.feature_weight.copy_(torch.tensor([0.0, 1, 3, 1, 1, 1, 1, 1, 1, 1]))
    ids = torch.tensor([[0, 1, 2]])
    # bag: (1 * row1 + 3 * row2) / 2 features; weighted_mean: the same sum / (1 + 3)
    torch.testing.assert_close(net.encode(ids), torch.tensor([[(2 + 12) / 2, (3 + 15) / 2]]))
    torch.testing.assert_close(other.encode(ids), torch.tensor([[(2 + 12) / 4, (3 + 15) / 4]]))


def test_flatten_keeps_order():
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(40, 3, kind="flatten", dim=2))
    assert net.encoder.out_dim == 6
    assert not torch.allclose(net(torch.tensor([[1, 2, 3]])), net(torch.tensor([[3, 2, 1]])))


def test_the_registry_names_each_kind_once():
    assert sorted(ENCODERS) == ["bag", "flatten", "mean", "weighted_mean"]
    assert all(encoder_class({"kind": k}).kind == k for k in ENCODERS)
    with pytest.raises(ValueError, match="encoder kind None"):
        encoder_class({})


def test_frozen_embedding_takes_no_gradient_and_init_choices_differ():
    frozen = EmbeddingClassifier(net_spec(30, 4, freeze=True))
    assert not frozen.embedding.weight.requires_grad
    torch.manual_seed(0)
    keras = EmbeddingClassifier(net_spec(1000, 4, dim=8, init="keras"))
    torch.manual_seed(0)
    fasttext = EmbeddingClassifier(net_spec(1000, 4, dim=8, init="fasttext"))
    assert keras.embedding.weight.abs().max() <= 0.05 < 0.1 <= fasttext.embedding.weight.abs().max()
    assert torch.count_nonzero(fasttext.head[-1].weight) == 0  # fastText's head starts at zero
    with pytest.raises(ValueError, match="init must be one of"):
        EmbeddingClassifier(net_spec(30, 4, init="xavier"))
