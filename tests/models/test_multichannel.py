"""embedding=multichannel (Kim 2014): a frozen and a tuned copy of the pretrained vectors,
side by side, under a sequence encoder; the frozen copy never moves, the checkpoint predicts
alone and exports to ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SMALL, compose_cfg, net_spec, train_in_process
from embedclf.models.classifier import EmbeddingClassifier
from embedclf.training.checks import check_net
from embedclf.util.errors import UserError

WORDS = ["the", "movie", "good", "bad", "great", "awful", "plot"]


@pytest.mark.parametrize("kind", ["cnn", "rnn", "transformer", "flatten", "mean"])
def test_both_channels_start_from_the_vectors_and_only_the_tuned_one_learns(kind):
    settings = {"heads": 2} if kind == "transformer" else {}
    spec = net_spec(30, seq_len=8, dim=4, kind=kind, **settings)
    spec["embedding"]["channels"] = 2
    net = EmbeddingClassifier(spec)
    vectors = torch.randn(30, 4)
    net.load_embedding(vectors)
    static, tuned = net.tables()
    assert torch.equal(static, vectors) and torch.equal(tuned, vectors)
    ids = torch.randint(1, 30, (3, 8))
    assert net.embedding(ids).shape == (3, 8, 8)  # the two channels side by side
    net(ids).sum().backward()
    assert static.grad is None and not static.requires_grad
    assert tuned.grad is not None and tuned.grad.abs().sum() > 0


def test_weighted_bags_refuse_two_channels_in_one_line():
    cfg = compose_cfg("experiment=ngram", "embedding=multichannel")
    with pytest.raises(UserError, match=r"embedding\.channels=2 must be 1, or 2 .* other than bag"):
        check_net(cfg.model.net)


def test_a_multichannel_cnn_trains_keeps_its_static_copy_and_exports(dirs, tiny_tree, tmp_path):
    from embedclf import export
    from embedclf.predict import Predictor
    from embedclf.runtime import Runtime

    vectors = tmp_path / "vecs.txt"
    vectors.write_text("".join(f"{w} {i}.5 -{i}.25 0.0\n" for i, w in enumerate(WORDS)))
    metrics = train_in_process(
        dirs["run"],
        "experiment=sentence_cnn",
        "embedding=multichannel",
        f"vectors.path={vectors}",
        "vectors.dim=3",
        *SMALL,
        "model.optimizer.lr=0.05",
        "data=imdb",
        f"data.root={tiny_tree}",
    )
    state = torch.load(metrics["checkpoint"], weights_only=True)["state_dict"]
    static, tuned = state["net.embedding.static.weight"], state["net.embedding.tuned.weight"]
    good = Predictor(metrics["checkpoint"]).featurizer.word_index["good"]
    assert torch.equal(static[good], torch.tensor([2.5, -2.25, 0.0]))  # never moved
    assert not torch.equal(tuned[good], static[good])  # tuned with the task
    texts = ["great superb loved it", "awful boring hated it", "the plot"]
    out = tmp_path / "onnx"
    export.export_onnx(metrics["checkpoint"], out)
    np.testing.assert_allclose(
        Runtime(out).probabilities(texts),
        Predictor(metrics["checkpoint"]).probabilities(texts).numpy(),
        atol=1e-5,
    )


def test_sparse_two_channels_are_refused_in_one_line():
    cfg = compose_cfg(
        "experiment=sentence_cnn", "embedding=multichannel", "model.net.embedding.sparse=true"
    )
    with pytest.raises(UserError, match="sparse=true does not go with channels=2"):
        check_net(cfg.model.net)
