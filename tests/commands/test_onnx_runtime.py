"""export --format onnx and embedclf.runtime: every encoder kind gives the checkpoint's
probabilities to 1e-5 on 1,000 texts, without torch."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SMALL, review, train_in_process, write_tree
from embedclf import export
from embedclf.runtime import Runtime
from embedclf.util.errors import UserError

MODELS = {
    "flatten": ["experiment=seed_learned"],
    "ngram": ["experiment=ngram", "data.maxlen=64", "data.num_words=60", "data.buckets=500"],
    "mean": ["experiment=seed_learned", "model=flatten", "model.net.encoder.kind=mean"],
    "pooled": ["experiment=seed_learned", "model=pooled"],
    "cnn": ["experiment=seed_learned", "model=cnn", "model.net.embedding.dim=8"],
    "cnn_max_mean": [
        "experiment=seed_learned",
        "model=cnn",
        "model.net.embedding.dim=8",
        "model.net.encoder.pool=max_mean",
    ],
    "rnn": ["experiment=seed_learned", "model=rnn", "model.net.encoder.layers=2"],
    "gru_last": [
        "experiment=seed_learned",
        "model=rnn",
        "model.net.encoder.cell=gru",
        "model.net.encoder.pool=last",
    ],
    "transformer": ["experiment=seed_learned", "model=transformer"],
    "transformer_final_norm": [
        "experiment=seed_learned",
        "model=transformer",
        "model.net.encoder.final_norm=true",
    ],
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("onnx-trees")
    return {
        "two": write_tree(root / "two", per_class=30),
        "three": write_tree(root / "three", per_class=20, classes=("neg", "pos", "meh")),
    }


@pytest.fixture(scope="module")
def texts() -> list[str]:
    rng = random.Random(5)
    out = [review(rng, rng.choice(["neg", "pos", "meh"])) for _ in range(997)]
    return [*out, "", "zzz unknown words only", "good " * 300]  # empty, unknown, over maxlen


def checkpoint(name: str, tree: Path, root: Path, *more: str) -> str:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDCLF_CACHE_DIR", str(root / "cache"))
        metrics = train_in_process(
            root / name,
            *MODELS[name],
            *SMALL,
            "trainer.max_epochs=2",
            f"data.root={tree}",
            *more,
        )
    return metrics["checkpoint"]


@pytest.mark.parametrize("name", list(MODELS))
def test_onnxruntime_gives_the_checkpoints_probabilities(name, trees, texts, tmp_path):
    from embedclf.predict import Predictor

    three = ("cnn", "cnn_max_mean", "transformer", "transformer_final_norm")
    tree = trees["three" if name in three else "two"]
    ckpt = checkpoint(name, tree, tmp_path)
    out = tmp_path / "exported"
    difference = export.export_onnx(ckpt, out)
    assert sorted(p.name for p in out.iterdir()) == ["encoder.json", "model.onnx"]
    assert difference <= 1e-5
    runtime = Runtime(out)
    predictor = Predictor(ckpt)
    assert runtime.classes == predictor.classes
    got = runtime.probabilities(texts)
    expected = predictor.probabilities(texts).numpy()
    assert got.shape == expected.shape == (1000, len(predictor.classes))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert runtime.predict(texts[:5]) == [
        {"label": r["label"], "probs": pytest.approx(r["probs"], abs=1e-5)}
        for r in predictor.predict(texts[:5])
    ]


def test_the_runtime_command_never_imports_torch_and_prints_predicts_lines(trees, tmp_path):
    ckpt = checkpoint("flatten", trees["two"], tmp_path)
    out = tmp_path / "model"
    assert export.main([ckpt, str(out), "--format", "onnx"]) is None
    lines = tmp_path / "texts.txt"
    lines.write_text("great superb loved it\nawful boring\n\nthe plot\n")
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "embedclf.runtime", str(out), str(lines)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    heavy = {m for m in imported if m.split(".")[0] in ("torch", "pytorch_lightning", "hydra")}
    assert "onnxruntime" in imported and not heavy, sorted(heavy)
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    predicted = subprocess.run(
        [sys.executable, "-m", "embedclf.predict", ckpt, str(lines)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    expected = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [p["label"] for p in printed] == [e["label"] for e in expected] and len(printed) == 3
    for got, want in zip(printed, expected, strict=True):
        assert got["probs"] == pytest.approx(want["probs"], abs=1e-5)


def test_export_refuses_a_file_or_a_used_folder_and_a_folder_without_a_model(trees, tmp_path):
    ckpt = checkpoint("flatten", trees["two"], tmp_path)
    with pytest.raises(UserError, match="exists and is not a directory"):
        export.export_onnx(ckpt, ckpt)
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("keep me")
    for force in (False, True):  # a folder of other files is never replaced: not even forced
        with pytest.raises(UserError, match=r"holds other files than an export \(notes\.txt\)"):
            export.export_onnx(ckpt, used, force=force)
    assert (used / "notes.txt").read_text() == "keep me"
    with pytest.raises(UserError, match="holds other files than an export"):
        export.export_onnx(ckpt, Path(ckpt).parent, force=True)  # the checkpoints' folder
    assert Path(ckpt).is_file()
    earlier = tmp_path / "earlier"
    export.export_onnx(ckpt, earlier)
    with pytest.raises(UserError, match="holds an export; give a new folder, or --force"):
        export.export_onnx(ckpt, earlier)
    export.export_onnx(ckpt, earlier, force=True)
    assert sorted(p.name for p in earlier.iterdir()) == ["encoder.json", "model.onnx"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    used = earlier
    with pytest.raises(UserError, match="holds no exported model"):
        Runtime(tmp_path)
    (used / "encoder.json").write_text("[1, 2")
    with pytest.raises(UserError, match="is not readable JSON"):
        Runtime(used)


def test_inference_checkpoint_and_pruned_onnx_are_smaller_and_give_the_same_answers(
    trees, texts, tmp_path
):
    """ngram's hashed buckets: most rows are never reached by the training texts; the
    optimiser's state says which were, and the pruned graph keeps only those."""
    import torch

    from embedclf.predict import Predictor

    ckpt = checkpoint("ngram", trees["two"], tmp_path, "data.buckets=100000")
    slim = tmp_path / "slim.ckpt"
    size = export.export_checkpoint(ckpt, slim)
    assert size < Path(ckpt).stat().st_size * 0.7
    assert "optimizer_states" not in torch.load(slim, weights_only=True)
    np.testing.assert_array_equal(
        Predictor(slim).probabilities(texts).numpy(), Predictor(ckpt).probabilities(texts).numpy()
    )
    with pytest.raises(UserError, match="cannot tell which rows training used"):
        export.export_onnx(slim, tmp_path / "from-slim", prune=True)

    full, pruned = tmp_path / "full", tmp_path / "pruned"
    export.export_onnx(ckpt, full)
    export.export_onnx(ckpt, pruned, prune=True)
    assert (pruned / "model.onnx").stat().st_size < (full / "model.onnx").stat().st_size / 3
    # texts made of training reviews' words and bigrams reach only kept rows: the same answers
    seen = texts[:200]  # the generator's vocabulary; bigrams seen in training are most of them
    got, want = Runtime(pruned).probabilities(seen), Runtime(full).probabilities(seen)
    assert (np.abs(got - want).max(1) < 1e-5).mean() > 0.5
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.95


def test_an_exported_vocabulary_keeps_a_word_with_a_lone_surrogate(trees, tmp_path):
    # the tokeniser keeps what a text holds, lone surrogates too; UTF-8 cannot encode them,
    # so encoder.json holds ASCII escapes
    import torch

    from embedclf.models.packed_words import packed, unpack_vocab

    stored = torch.load(checkpoint("flatten", trees["two"], tmp_path), weights_only=True)
    state = dict(stored["text_featurizer"])
    unpack_vocab(state, "test")
    state["vocab"][3] = "x\ud800y"
    stored["text_featurizer"] = packed(state)
    torch.save(stored, tmp_path / "odd.ckpt")
    export.export_onnx(tmp_path / "odd.ckpt", tmp_path / "out")
    assert Runtime(tmp_path / "out").featurizer.vocab[3] == "x\ud800y"


def test_an_rnn_exports_from_a_process_that_never_ran_it(tmp_path):
    """The padded passes build their one-direction structures on first use; where that is
    inside the export's trace, the graph must still give the network's probabilities."""
    import torch

    from conftest import net_spec
    from embedclf.models.classifier import EmbeddingClassifier
    from embedclf.models.encoders import rnn
    from embedclf.models.onnx import TOLERANCE, export_onnx

    torch.manual_seed(0)
    spec = net_spec(40, 12, dim=8, kind="rnn", layers=2, bidirectional=True, pool="last")
    net = EmbeddingClassifier(spec).eval()
    rnn._direction.cache_clear()
    assert export_onnx(net, True, 12, tmp_path / "model.onnx") <= TOLERANCE
