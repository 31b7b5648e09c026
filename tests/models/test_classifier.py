"""The network and the LightningModule, trained through the module's own hooks: shapes,
initialisation, freezing, learning the labels, optimiser steps, predictions."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from conftest import net_spec, padded
from embedclf.data.datamodule import TextFolderDataModule
from embedclf.models.classifier import EmbeddingClassifier
from embedclf.models.recipe import EmbeddingClassifierModule

RMSPROP = {"_target_": "torch.optim.RMSprop", "_partial_": True, "lr": 0.01}


def dense(net: torch.nn.Module, index: int = 0) -> torch.nn.Linear:
    """The head's ``index``-th dense layer."""
    return [m for m in net.head if isinstance(m, torch.nn.Linear)][index]


def make_module(**kwargs) -> EmbeddingClassifierModule:
    args = dict(seq_len=5, dim=4, hidden=[3])
    args.update(kwargs)
    return EmbeddingClassifierModule(net=net_spec(30, **args), optimizer=RMSPROP)


@pytest.fixture
def datamodule(dirs, tiny_tree) -> TextFolderDataModule:
    """The generated tree: 64 training reviews (8 optimiser steps of 8), 16 validation."""
    dm = TextFolderDataModule(
        root=str(tiny_tree),
        num_words=60,
        maxlen=40,
        batch_size=8,
        val_samples=16,
        steps_per_call=3,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


def module_for(dm: TextFolderDataModule, init=None, **kwargs) -> EmbeddingClassifierModule:
    args = dict(seq_len=40, classes=dm.num_classes, dim=8)
    args.update(kwargs)
    module = EmbeddingClassifierModule(net=net_spec(dm.vocab_size, **args), optimizer=RMSPROP)
    if init is not None:
        module.net.load_embedding(init)
    return module


def trainer(epochs: int) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,
    )


def test_training_step_learns_the_labels(datamodule):
    pl.seed_everything(0, verbose=False)
    module = module_for(datamodule)
    fit = trainer(6)
    fit.fit(module, datamodule=datamodule)
    history = module.history
    assert len(history["train/loss"]) == 6 and len(history["val/acc"]) == 6
    assert history["train/loss"][-1] < 0.5 * history["train/loss"][0]
    # the generated reviews carry obvious cue words: learned with the right labels, the
    # training and validation accuracies are high (flipped labels would make them low)
    assert history["train/acc"][-1] > 0.9 and history["val/acc"][-1] >= 0.75
    # 64 reviews, batches of 8, three per Lightning step: 8 optimiser updates per epoch in 3
    # Lightning steps (the last of each dispatched by Lightning, and counted)
    assert fit.global_step == 6 * 3
    optimizer = module.optimizers().optimizer
    assert all(int(s["step"]) == 6 * 8 for s in optimizer.state.values())
    # and the test split, scored through test_step, agrees with what was learned
    [scores] = fit.test(module, datamodule=datamodule, verbose=False)
    assert scores["test/acc"] > 0.8 and fit.callback_metrics["test/samples"] == 80


def test_three_classes_learn_through_cross_entropy(dirs, tmp_path):
    from conftest import write_tree

    root = write_tree(tmp_path / "d", per_class=30, classes=("a", "b", "c"))
    dm = TextFolderDataModule(root=str(root), num_words=60, maxlen=40, batch_size=8, val_samples=0)
    dm.prepare_data()
    dm.setup("fit")
    pl.seed_everything(0, verbose=False)
    module = module_for(dm)
    assert dense(module.net, -1).out_features == 3
    trainer(8).fit(module, datamodule=dm)
    assert module.history["train/acc"][-1] > 0.9


def test_frozen_embedding_is_unchanged_by_training(datamodule):
    init = np.random.default_rng(0).normal(size=(datamodule.vocab_size, 8)).astype(np.float32)
    module = module_for(datamodule, init, freeze=True, hidden=[4])
    head_before = dense(module.net).weight.detach().clone()
    trainer(1).fit(module, datamodule=datamodule)
    np.testing.assert_array_equal(module.net.embedding.weight.detach().numpy(), init)
    assert not torch.equal(dense(module.net).weight, head_before)  # the head did learn


def test_trainable_embedding_changes_with_training(datamodule):
    init = np.random.default_rng(0).normal(size=(datamodule.vocab_size, 8)).astype(np.float32)
    module = module_for(datamodule, init, freeze=False)
    trainer(1).fit(module, datamodule=datamodule)
    assert not np.array_equal(module.net.embedding.weight.detach().numpy(), init)


def test_predict_step_gives_class_probabilities(datamodule):
    pl.seed_everything(0, verbose=False)
    module = module_for(datamodule)
    fit = trainer(4)
    fit.fit(module, datamodule=datamodule)
    probabilities = torch.cat(fit.predict(module, datamodule=datamodule))
    assert probabilities.shape == (80, 2)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(80))
    with torch.no_grad():
        logits = module(torch.from_numpy(padded(datamodule, "test")))
    torch.testing.assert_close(probabilities[:, 1], torch.sigmoid(logits))
    predicted = probabilities.argmax(-1).numpy()
    assert (predicted == datamodule.labels["test"]).mean() > 0.8


def test_loss_is_low_for_right_confident_logits_and_high_for_wrong_ones():
    binary = make_module()
    labels = torch.tensor([0, 1, 1, 0])
    right = torch.tensor([-6.0, 6.0, 6.0, -6.0])
    assert binary.loss(right, labels) < 0.01 < 5 < binary.loss(-right, labels)
    multi = make_module(classes=3)
    logits = torch.nn.functional.one_hot(torch.tensor([2, 0]), 3).float() * 10
    assert multi.loss(logits, torch.tensor([2, 0])) < 0.01
    assert multi.loss(logits, torch.tensor([0, 1])) > 5


def test_keras_initialisation_ranges():
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(1000, 20, dim=8, hidden=[32]))
    emb = net.embedding.weight
    assert emb.abs().max() <= 0.05 and emb.std() > 0.02
    first = dense(net)
    limit = (6 / (first.in_features + first.out_features)) ** 0.5  # Glorot uniform
    assert first.weight.abs().max() <= limit and first.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(first.bias) == 0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_keras_initialisation_of_recurrent_and_convolution_layers(cell):
    torch.manual_seed(0)
    rnn = EmbeddingClassifier(net_spec(50, 6, dim=8, kind="rnn", cell=cell)).encoder.rnn
    gates, units = (4 if cell == "lstm" else 3), rnn.hidden_size
    kernel, recurrent = rnn.weight_ih_l0, rnn.weight_hh_l0
    limit = (6 / (8 + gates * units)) ** 0.5  # Glorot uniform over the stacked gates
    assert kernel.abs().max() <= limit and kernel.abs().max() > 0.9 * limit
    assert torch.allclose(recurrent.T @ recurrent, torch.eye(units), atol=1e-5)  # orthogonal
    forget = torch.zeros(gates * units)
    if cell == "lstm":
        forget[units : 2 * units] = 1.0  # PyTorch's LSTM gates: input, forget, cell, output
    assert torch.equal(rnn.bias_ih_l0.detach(), forget)
    assert torch.count_nonzero(rnn.bias_hh_l0) == 0
    conv = EmbeddingClassifier(net_spec(50, 6, dim=8, kind="cnn", filters=7)).encoder.convs[0]
    limit = (6 / (8 * 3 + 7 * 3)) ** 0.5  # Keras's Conv1D kernel: fans times the width
    assert conv.weight.abs().max() <= limit and conv.weight.abs().max() > 0.9 * limit
    assert torch.count_nonzero(conv.bias) == 0
    torched = EmbeddingClassifier(net_spec(50, 6, dim=8, kind="rnn", init="torch")).encoder.rnn
    assert torch.count_nonzero(torched.bias_hh_l0) > 0  # PyTorch's own draws, untouched


def test_binary_has_one_logit_multiclass_one_per_class():
    ids = torch.randint(0, 50, (4, 6))
    two = EmbeddingClassifier(net_spec(50, 6, 2, dim=3))
    five = EmbeddingClassifier(net_spec(50, 6, 5, dim=3, hidden=[7]))
    assert two(ids).shape == (4,) and five(ids).shape == (4, 5)


def test_embedding_init_shape_mismatch_is_refused():
    net = EmbeddingClassifier(net_spec(50, 6, dim=3))
    with pytest.raises(ValueError, match="the pretrained matrix has shape"):
        net.load_embedding(np.zeros((50, 4), np.float32))


def test_parameters_given_to_the_optimiser_exclude_frozen_ones():
    module = make_module(freeze=True)
    optimizer = module.configure_optimizers()["optimizer"]
    given = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert id(module.net.embedding.weight) not in given
    assert len(given) == 4  # two dense layers, weight and bias each


def test_mean_pooling_ignores_padding_and_position():
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(50, 6, kind="mean"))
    a = torch.tensor([[0, 0, 0, 3, 7, 9]])
    b = torch.tensor([[9, 3, 7, 0, 0, 0]])  # same words, other order, padding after
    c = torch.tensor([[0, 0, 0, 0, 3, 7]])  # one word fewer
    assert torch.allclose(net(a), net(b)) and not torch.allclose(net(a), net(c))
    # a longer sequence needs no more parameters
    longer = EmbeddingClassifier(net_spec(50, 600, kind="mean"))
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in longer.parameters())


def test_unknown_encoder_is_refused():
    with pytest.raises(ValueError, match=r"encoder kind 'max' is not one of flatten, mean"):
        EmbeddingClassifier(net_spec(50, 6, kind="max"))


def test_max_norm_holds_each_outputs_weights_after_every_update(dirs, tiny_tree):
    """Kim's constraint: trained with a small bound, every output row ends at or under it
    (and without the bound, the same run's rows grow past it)."""
    from conftest import SMALL, train_in_process

    def head_norms(*more: str) -> torch.Tensor:
        metrics = train_in_process(
            dirs["run"] / str(len(more)),
            "experiment=seed_learned",
            "model=cnn",
            *SMALL,
            "model.optimizer.lr=0.05",
            f"data.root={tiny_tree}",
            *more,
        )
        state = torch.load(metrics["checkpoint"], weights_only=True)["state_dict"]
        return state["net.head.1.weight"].norm(dim=1)

    assert float(head_norms().max()) > 0.05
    assert float(head_norms("model.net.head.max_norm=0.05").max()) <= 0.05 + 1e-6
