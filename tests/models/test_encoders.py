"""Every encoder under the protocol: its width, what padding does to it, the registry, and the
one spec the network is built from."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from conftest import flat_rows, net_spec
from embedclf.data.batches import Tokens
from embedclf.models.classifier import EmbeddingClassifier
from embedclf.models.encoders import ENCODERS, Encoder, encoder_class

# every encoder but flatten (one weight per position) ignores padding
MASKED = [kind for kind in ENCODERS if kind != "flatten"]


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_each_encoder_gives_out_dim_wide_vectors(kind):
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(40, 7, kind=kind, dim=8))
    assert isinstance(net.encoder, Encoder) and net.encoder.kind == kind
    vectors = net.encode(torch.randint(1, 40, (3, 7)))
    assert vectors.shape == (3, net.encoder.out_dim)
    assert net(torch.randint(1, 40, (3, 7))).shape == (3,)


@pytest.mark.parametrize("kind", MASKED)
def test_padding_never_moves_a_masked_encoders_logits(kind):
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(40, 9, 3, kind=kind, dim=8, init="torch")).eval()
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
    assert sorted(ENCODERS) == [
        "bag",
        "cnn",
        "flatten",
        "mean",
        "rnn",
        "transformer",
        "weighted_mean",
    ]
    assert all(encoder_class({"kind": k}).kind == k for k in ENCODERS)
    with pytest.raises(ValueError, match="encoder kind None"):
        encoder_class({})


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_each_checked_setting_is_a_keyword_whose_default_passes(kind):
    """What training/checks.py reads before a run: a setting of ``choices`` or ``counts`` left
    out of the config takes the constructor's default, which must pass the same check."""
    import inspect

    parameters = inspect.signature(ENCODERS[kind].__init__).parameters
    for name, names in ENCODERS[kind].choices.items():
        assert parameters[name].kind == inspect.Parameter.KEYWORD_ONLY, name
        assert parameters[name].default in names, name
    for name, (least, most) in ENCODERS[kind].counts.items():
        assert parameters[name].kind == inspect.Parameter.KEYWORD_ONLY, name
        default = parameters[name].default
        for value in default if isinstance(default, tuple) else [default]:
            assert least <= value and (most is None or value <= most), name


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


@pytest.mark.parametrize(
    "settings",
    [
        {"kind": "rnn", "cell": "gru", "bidirectional": True, "pool": "max"},
        {"kind": "rnn", "cell": "lstm", "layers": 2, "pool": "mean"},
        {"kind": "transformer", "positions": "sinusoidal", "pool": "cls"},
        {"kind": "transformer", "final_norm": True},
        {"kind": "cnn", "widths": [2, 6], "filters": 5},
        {"kind": "cnn", "widths": [2, 6], "filters": 5, "pool": "mean"},
        {"kind": "cnn", "widths": [2, 6], "filters": 5, "pool": "max_mean"},
    ],
    ids=lambda s: "-".join(str(v) for v in s.values()),
)
def test_sequence_encoder_variants_ignore_padding_and_see_order(settings):
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(40, 9, 3, dim=8, init="torch", **settings)).eval()
    ids = torch.tensor([[5, 9, 3], [7, 2, 0]])  # the second row shorter than a width-6 filter
    padded = torch.cat([torch.zeros(2, 4, dtype=torch.long), ids, torch.zeros(2, 2).long()], 1)
    torch.testing.assert_close(net(padded), net(ids), rtol=0, atol=1e-5)
    # a short row beside a long one (the batch padded to the long one) scores as it does alone
    batch = torch.tensor([[5, 9, 3, 8, 6, 4, 1, 2, 7], [7, 2, 0, 0, 0, 0, 0, 0, 0]])
    torch.testing.assert_close(net(batch)[1], net(ids[1:, :2])[0], rtol=0, atol=1e-5)
    assert net.encode(ids).shape == (2, net.encoder.out_dim)
    assert not torch.allclose(net(torch.tensor([[3, 9, 5]])), net(ids[:1]))  # order matters


def test_transformer_final_norm_normalises_each_words_output():
    torch.manual_seed(0)
    outputs = {}
    for final_norm in (False, True):
        net = EmbeddingClassifier(
            net_spec(40, 6, dim=8, kind="transformer", heads=2, final_norm=final_norm)
        ).eval()
        net.encoder.encoder.register_forward_hook(lambda m, i, out: outputs.update(h=out))
        net(torch.tensor([[0, 0, 5, 9, 3, 7]]))
        words = outputs["h"][0, :4]  # the four real words
        normalised = torch.allclose(words.mean(-1), torch.zeros(4), atol=1e-5) and torch.allclose(
            words.var(-1, unbiased=False), torch.ones(4), atol=1e-3
        )
        assert normalised is final_norm
    with pytest.raises(ValueError, match=r"transformer: final_norm='yes' must be true or false"):
        EmbeddingClassifier(net_spec(40, 6, dim=8, kind="transformer", final_norm="yes"))


def test_an_all_padding_row_gives_finite_logits():
    pools = [{"kind": "transformer", "pool": "cls"}, {"kind": "rnn", "pool": "last"}]
    for settings in [{"kind": kind} for kind in MASKED] + pools:
        net = EmbeddingClassifier(net_spec(40, 4, dim=8, **settings)).eval()
        ids = torch.tensor([[0, 0, 0, 0], [0, 5, 9, 0]])
        logits = net(ids)
        assert torch.isfinite(logits).all(), settings
        # the empty row's features are zeros: its logits are the head's bias alone
        torch.testing.assert_close(net.encode(ids)[0], torch.zeros(net.encoder.out_dim))


def test_cnn_leaves_out_windows_of_padding_only():
    """Windows of padding alone would score the bias: with negative filters over positive
    vectors every real window scores below it, so counting them would show."""
    net = EmbeddingClassifier(net_spec(10, 8, dim=4, kind="cnn", widths=[2], filters=1))
    with torch.no_grad():
        net.embedding.weight.uniform_(0.5, 1.0)
        net.encoder.convs[0].weight.fill_(-1.0)
        net.encoder.convs[0].bias.fill_(1.0)
    ids = torch.tensor([[0, 0, 0, 0, 3, 4, 5, 0]])
    assert float(net.encode(ids)) == 0.0  # every real window is below zero: ReLU gives 0
    torch.testing.assert_close(net.encode(ids), net.encode(torch.tensor([[3, 4, 5]])))


def test_cnn_mean_is_over_the_windows_with_a_real_word():
    """One filter summing a width-2 window of vectors 1, 2, 3: the windows holding a real word
    are [0 1], [1 2], [2 3], [3 0] (sums 1, 3, 5, 3), so the mean is 3 and the max 5."""
    net = EmbeddingClassifier(
        net_spec(10, 8, dim=1, kind="cnn", widths=[2], filters=1, pool="max_mean")
    )
    assert net.encoder.out_dim == 2
    with torch.no_grad():
        net.embedding.weight.copy_(torch.arange(10.0).view(10, 1))
        net.encoder.convs[0].weight.fill_(1.0)
        net.encoder.convs[0].bias.fill_(0.0)
    for ids in ([[1, 2, 3]], [[0, 0, 1, 2, 3, 0, 0, 0]]):
        torch.testing.assert_close(net.encode(torch.tensor(ids)), torch.tensor([[5.0, 3.0]]))
    with pytest.raises(ValueError, match="cnn: pool='avg' must be one of max, mean, max_mean"):
        EmbeddingClassifier(net_spec(10, 8, dim=1, kind="cnn", pool="avg"))


@pytest.mark.parametrize(
    ("kind", "settings", "message"),
    [
        ("cnn", {"widths": [3, 0]}, r"widths=\[3, 0\] must be whole numbers >= 1"),
        ("cnn", {"filters": 0}, r"filters=0 must be a whole number >= 1"),
        ("rnn", {"cell": "tanh"}, r"cell='tanh' must be one of lstm, gru"),
        ("rnn", {"layers": 5}, r"layers=5 must be a whole number from 1 to 4"),
        ("rnn", {"hidden": 0}, r"hidden=0 must be a whole number >= 1"),
        ("transformer", {"positions": "rotary"}, r"positions='rotary' must be one of learned"),
        ("transformer", {"heads": 0}, r"heads=0 must be a whole number >= 1"),
        ("transformer", {"width": 6}, r"width=6 must be a whole number that heads=4 divides"),
        ("transformer", {"width": -8}, r"width=-8 must be a whole number that heads=4 divides"),
        ("bag", {"weighting": "idf"}, r"weighting='idf' must be one of none"),
    ],
)
def test_an_encoder_refuses_what_the_run_checks_refuse_in_the_same_words(kind, settings, message):
    """A spec read from a checkpoint is checked by the constructor with the rule the run's
    checks apply before reading data (Encoder.check_settings): one rule, one message."""
    from omegaconf import OmegaConf

    from embedclf.training.checks import check_net
    from embedclf.util.errors import ConfigError

    with pytest.raises(ValueError, match=f"^{kind}: {message}"):
        ENCODERS[kind](dim=8, seq_len=10, rows=20, **settings)
    net = OmegaConf.create({"embedding": {"dim": 8}, "encoder": {"kind": kind, **settings}})
    with pytest.raises(ConfigError, match=rf"^model\.net\.encoder\.{message}"):
        check_net(net)


def test_cnn_mean_of_a_long_row_stays_finite_in_float16():
    """1,000 windows of 80 sum past float16's largest number (65,504); their mean is 80."""
    net = EmbeddingClassifier(
        net_spec(10, 8, dim=8, kind="cnn", widths=[1], filters=1, pool="mean")
    )
    with torch.no_grad():
        net.embedding.weight.fill_(10.0)
        net.encoder.convs[0].weight.fill_(1.0)
        net.encoder.convs[0].bias.fill_(0.0)
    net = net.half()
    assert float(net.encode(torch.full((1, 1000), 3))) == 80.0


@pytest.mark.parametrize("model", ["cnn", "rnn", "transformer"])
def test_sequence_models_train_and_their_checkpoint_predicts_alone(model, dirs, tiny_tree):
    from conftest import SMALL, train_in_process
    from embedclf.models.checkpoint import load_checkpoint, module_from_checkpoint
    from embedclf.predict import Predictor

    metrics = train_in_process(
        dirs["run"],
        "experiment=seed_learned",
        f"model={model}",
        *SMALL,
        "model.net.embedding.dim=16",
        "model.optimizer.lr=0.01",
        f"data.root={tiny_tree}",
    )
    assert metrics["test_acc"] > 0.7, metrics  # the cue words are learnable
    texts = ["great superb loved it", "awful boring", "the plot"]
    module = module_from_checkpoint(load_checkpoint(metrics["checkpoint"]), "ckpt")
    assert module.hparams.net["encoder"]["kind"] == model
    with torch.no_grad():
        expected = module.probabilities(module(torch.from_numpy(module.featurizer.encode(texts))))
    torch.testing.assert_close(Predictor(metrics["checkpoint"]).probabilities(texts), expected)


# -- flat batches (Tokens): each encoder's layout -------------------------------------------
ROWS = [[5, 9, 3, 7], [], [2], [8, 8, 1, 4, 6, 2, 3]]


@pytest.mark.parametrize("kind", list(ENCODERS))
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_flat_rows_give_the_logits_of_the_rows_padded_to_maxlen(kind, padding):
    """Bags read the flat ids through EmbeddingBag's offsets, the others pad them: the same
    logits as the padded rows training fed before (the padding on the featurizer's side)."""
    torch.manual_seed(0)
    net = EmbeddingClassifier(net_spec(40, 9, 3, kind=kind, dim=8, init="torch")).eval()
    if kind in ("bag", "weighted_mean"):
        net.encoder.feature_weight.uniform_(0.5, 2.0)
    tokens = flat_rows(ROWS, padding)
    with torch.no_grad():
        torch.testing.assert_close(net(tokens), net(tokens.padded(9)), rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["bag", "weighted_mean", "mean"])
def test_bags_take_the_flat_ids_with_no_padding(kind):
    net = EmbeddingClassifier(net_spec(40, 9, kind=kind, dim=8))
    seen: list[tuple] = []
    net.embedding.register_forward_hook(lambda m, args, out: seen.append(args))
    if kind == "mean":  # F.embedding_bag on the weight: no module call to watch
        assert net.encoder.layout == "bag"
        return
    net(flat_rows(ROWS))
    [(flat, offsets, *_)] = seen
    assert flat.dim() == 1 and len(flat) == sum(map(len, ROWS)) and bool((flat > 0).all())
    assert offsets.tolist() == [0, 4, 4, 5]


@pytest.mark.parametrize("kind", ["cnn", "rnn", "transformer"])
def test_order_aware_encoders_see_rows_padded_to_the_batchs_longest(kind):
    net = EmbeddingClassifier(net_spec(40, 50, kind=kind, dim=8))
    widths: list[int] = []
    net.embedding.register_forward_hook(lambda m, args, out: widths.append(args[0].shape[1]))
    net(flat_rows(ROWS))
    assert widths == [7]  # the longest row, not maxlen (50)
    widths.clear()
    net(flat_rows([[3], []]))
    assert widths == [1]


def test_flatten_pads_every_batch_to_maxlen():
    net = EmbeddingClassifier(net_spec(40, 9, kind="flatten", dim=2))
    widths: list[int] = []
    net.embedding.register_forward_hook(lambda m, args, out: widths.append(args[0].shape[1]))
    net(flat_rows([[3], [1, 2]]))
    assert widths == [9]
    with pytest.raises(ValueError, match="does not fit"):
        net(flat_rows([list(range(1, 12))]))


@pytest.mark.parametrize("kind", ["bag", "weighted_mean"])
def test_sparse_bags_look_each_feature_up_once_with_the_same_logits_and_gradients(kind):
    def net(sparse: bool) -> EmbeddingClassifier:
        torch.manual_seed(0)
        spec = net_spec(40, 9, kind=kind, dim=6, init="torch")
        spec["embedding"]["sparse"] = sparse
        built = EmbeddingClassifier(spec)
        built.encoder.feature_weight.copy_(torch.linspace(0.5, 2.0, 40))
        return built

    dense, sparse = net(False), net(True)
    rows = [[5, 9, 5, 7, 5], [], [2, 9], [8, 8, 1]]  # repeated features within and across rows
    for model in (dense, sparse):
        model(flat_rows(rows)).sum().backward()
    torch.testing.assert_close(sparse(flat_rows(rows)), dense(flat_rows(rows)), rtol=0, atol=1e-6)
    grad = sparse.embedding.weight.grad
    # one gradient row per distinct feature (6), not per occurrence (10): less to sort and sum
    assert grad.is_sparse and grad._nnz() == 6
    # ascending and distinct (coalesced): the optimiser sorts nothing
    assert grad._indices()[0].tolist() == [1, 2, 5, 7, 8, 9]
    torch.testing.assert_close(grad.to_dense(), dense.embedding.weight.grad, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize(
    "layers,bidirectional,pool", [(1, False, "last"), (1, True, "last"), (2, True, "max")]
)
def test_rnn_padded_passes_give_packed_outputs_and_gradients(cell, layers, bidirectional, pool):
    """On a CPU the RNN trains on padded passes, one direction at a time; they must give
    what the packed RNN gives (cuDNN's path on a GPU), outputs and gradients alike."""
    torch.manual_seed(0)
    net = EmbeddingClassifier(
        net_spec(
            40,
            9,
            dim=8,
            kind="rnn",
            cell=cell,
            layers=layers,
            bidirectional=bidirectional,
            pool=pool,
        )
    )
    encoder = net.encoder
    ids = torch.tensor([[5, 9, 3, 7, 2, 0, 0], [7, 2, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 8]])
    lengths = (ids != 0).sum(1)
    got = encoder(net.embedding, ids, ids != 0)
    packed = pack_padded_sequence(net.embedding(ids), lengths, True, enforce_sorted=False)
    steps, _ = pad_packed_sequence(encoder.rnn(packed)[0], batch_first=True)
    want = encoder._pooled(steps, lengths)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    weights = torch.randn_like(want)
    grads = [
        torch.autograd.grad((v * weights).sum(), encoder.rnn.parameters()) for v in (got, want)
    ]
    for mine, theirs in zip(*grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-5)
    # the one-direction structures the padded passes run hold no state of their own
    assert set(encoder.state_dict()) == {f"rnn.{name}" for name in encoder.rnn.state_dict()}


def test_rnn_padded_passes_on_several_threads_at_once_give_each_its_own_outputs():
    """The server predicts on several threads at once; each pass sets a direction's weights
    on its own structure, so no thread runs with another's layer or direction."""
    torch.manual_seed(0)
    spec = net_spec(40, 30, dim=16, kind="rnn", layers=2, bidirectional=True, pool="mean")
    net = EmbeddingClassifier(spec).eval()
    batches = [torch.randint(1, 40, (8, 30)) for _ in range(4)]
    with torch.no_grad():
        want = [net(ids) for ids in batches]

        def run(index: int) -> bool:
            return all(torch.equal(net(batches[index]), want[index]) for _ in range(30))

        with ThreadPoolExecutor(4) as pool:
            assert all(pool.map(run, range(4)))


def test_dropped_tokens_keep_each_rows_remaining_ids_in_order():
    torch.manual_seed(0)
    rows = [list(range(1, 1 + n)) for n in (0, 7, 300, 1, 50)]
    offsets = torch.tensor([0, *torch.tensor([len(r) for r in rows]).cumsum(0).tolist()])
    tokens = Tokens(torch.tensor([i for r in rows for i in r]), offsets, "post")
    dropped = tokens.dropped(0.3)
    assert len(dropped) == len(tokens) and dropped.padding == "post"
    assert dropped.offsets[0] == 0 and dropped.offsets[-1] == len(dropped.flat)
    for i, row in enumerate(rows):
        kept = dropped.flat[dropped.offsets[i] : dropped.offsets[i + 1]].tolist()
        assert kept == sorted(kept) and set(kept) <= set(row)  # a subsequence of its own row
    assert 0.6 < len(dropped.flat) / len(tokens.flat) < 0.8  # about 70% kept
    assert torch.equal(tokens.dropped(0.0).flat, tokens.flat)


def _with_word_dropout(**settings):
    """A network, the same weights under word dropout 0.5, and 64 rows of 12 ids (padded and
    flat)."""
    torch.manual_seed(0)
    spec = net_spec(40, 12, dim=8, init="torch", **settings)
    plain = EmbeddingClassifier(spec)
    spec["embedding"]["word_dropout"] = 0.5
    net = EmbeddingClassifier(spec)
    net.load_state_dict(plain.state_dict())
    ids = torch.randint(1, 40, (64, 12))
    return plain, net, spec, ids, Tokens(ids.flatten(), torch.arange(0, 64 * 12 + 1, 12))


@pytest.mark.parametrize("kind", ["cnn", "bag", "flatten"])
def test_drop_words_leaves_words_out_and_the_forward_pass_reads_every_word(kind):
    plain, net, spec, ids, tokens = _with_word_dropout(kind=kind)
    for batch in (ids, tokens):
        net.train(), plain.train()
        torch.testing.assert_close(net(batch), plain(batch))  # only the training step drops
        first, second = net(net.drop_words(batch)), net(net.drop_words(batch))
        assert not torch.allclose(first, plain(batch))
        assert not torch.allclose(first, second)  # a fresh draw each time
        assert plain.drop_words(batch) is batch  # word_dropout 0: the rows as they are
    with pytest.raises(ValueError, match=r"word_dropout must be in \[0, 1\), got 1.0"):
        EmbeddingClassifier({**spec, "embedding": {**spec["embedding"], "word_dropout": 1.0}})


def test_the_training_step_drops_words_once_per_update_not_per_lbfgs_evaluation(
    dirs, tiny_tree, monkeypatch
):
    """L-BFGS evaluates the closure many times an update; each evaluation must see the
    same rows, or its line search compares different objectives."""
    from conftest import SMALL, train_in_process

    drops, evaluations = [], []
    drop_words, forward = EmbeddingClassifier.drop_words, EmbeddingClassifier.forward

    def counted_drop(self, ids):
        drops.append(1)
        return drop_words(self, ids)

    def counted_forward(self, ids):
        if self.training and torch.is_grad_enabled():
            evaluations.append(id(ids))
        return forward(self, ids)

    monkeypatch.setattr(EmbeddingClassifier, "drop_words", counted_drop)
    monkeypatch.setattr(EmbeddingClassifier, "forward", counted_forward)
    train_in_process(
        dirs["run"],
        "experiment=seed_learned",
        "model=pooled",
        *SMALL,
        "model.net.embedding.word_dropout=0.3",
        f"data.root={tiny_tree}",
    )
    assert 0 < len(drops) < len(evaluations)  # several evaluations of each update's rows


def test_each_lbfgs_evaluation_of_an_update_replays_its_dropout(dirs, tiny_tree, monkeypatch):
    """model=pooled (L-BFGS) with head dropout: every closure evaluation of one update drops
    the same features, so the line search compares one objective."""
    from conftest import SMALL, train_in_process

    # Updates are told apart by the batch tensor itself, held here: a freed tensor's id() can be
    # taken by the next batch's, which would merge two updates' draws.
    masks: dict[int, list[bytes]] = {}
    batches: list[torch.Tensor] = []
    current = [0]
    forward, dropout = EmbeddingClassifier.forward, torch.nn.Dropout.forward

    def noted_forward(self, ids):
        if not batches or batches[-1] is not ids:
            batches.append(ids)
        current[0] = len(batches)
        return forward(self, ids)

    def noted_dropout(self, x):
        out = dropout(self, x)
        if self.training:
            masks.setdefault(current[0], []).append((out == 0).numpy().tobytes())
        return out

    monkeypatch.setattr(EmbeddingClassifier, "forward", noted_forward)
    monkeypatch.setattr(torch.nn.Dropout, "forward", noted_dropout)
    train_in_process(
        dirs["run"],
        "experiment=seed_learned",
        "model=pooled",
        *SMALL,
        "model.net.head.dropout=0.5",
        f"data.root={tiny_tree}",
    )
    assert any(len(seen) > 1 for seen in masks.values())  # L-BFGS evaluated again
    assert all(len(set(seen)) == 1 for seen in masks.values())  # the same draw each time
    assert len({seen[0] for seen in masks.values()}) > 1  # a fresh draw each update


def test_standardisation_is_set_from_rows_encoded_as_scoring_does_and_leaves_training_on():
    from embedclf.data.batches import Batch
    from embedclf.models.weighting import set_standardization

    torch.manual_seed(0)
    spec = net_spec(40, 12, dim=8, kind="transformer", dropout=0.5, standardize=True)
    net = EmbeddingClassifier(spec)
    ids = torch.randint(1, 40, (64, 12))
    tokens = Tokens(ids.flatten(), torch.arange(0, 64 * 12 + 1, 12))
    set_standardization(net, [Batch(tokens, torch.zeros(64), 64)])
    assert net.training  # as it was
    with torch.no_grad():
        encoded = net.eval().encode(tokens)  # the encoder's own dropout off
    torch.testing.assert_close(net.feature_mean, encoded.mean(0))
    torch.testing.assert_close(net.feature_std, encoded.std(0) + 1e-6)


@pytest.mark.parametrize("clip", [None, 0.05])
def test_gradient_clip_val_bounds_every_updates_gradient(clip, dirs, tiny_tree, monkeypatch):
    """model.gradient_clip_val: every update steps with a gradient no longer than the value
    (over all trainable parameters), on the dispatched update and the plain ones alike;
    without it some gradient is longer, so the bound is the clipping's doing."""
    from conftest import SMALL, train_in_process

    norms: list[float] = []
    step = torch.optim.Adam.step

    def noted_step(self, closure=None):
        with torch.enable_grad():
            closure()  # Adam evaluates it once: this is the update's gradient
        grads = [p.grad for group in self.param_groups for p in group["params"]]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
        return step(self)

    monkeypatch.setattr(torch.optim.Adam, "step", noted_step)
    train_in_process(
        dirs["run"],
        "experiment=seed_learned",
        "model=rnn",
        *SMALL,
        "data.steps_per_call=2",
        f"model.gradient_clip_val={'null' if clip is None else clip}",
        f"data.root={tiny_tree}",
    )
    assert len(norms) > 4
    if clip is None:
        assert max(norms) > 0.1
    else:
        assert max(norms) <= clip * (1 + 1e-4)
