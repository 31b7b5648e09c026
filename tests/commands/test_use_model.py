"""What a trained model is used for: predict, evaluate, neighbours, export.

One tiny model is trained in-process per module (word n-grams on, so the commands must also
leave the hashed n-gram rows out); each command is then checked against what training itself
measured or stored. Subprocesses cost seconds each, so only a few go through the real CLI; the
others call the same ``main`` functions in-process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import conftest
from conftest import REPO, padded, write_tree
from embedclf import evaluate as evaluate_cmd
from embedclf import export, neighbours, predict
from embedclf.data.datamodule import TextFolderDataModule
from embedclf.data.readers.folder import read_dataset
from embedclf.models.checkpoint import featurizer_of, load_checkpoint, module_from_checkpoint
from embedclf.training.build import build_datamodule
from embedclf.training.run import train
from embedclf.util.errors import CheckpointError, DataError
from embedclf.vectors.cache import load_vectors

SMALL = [*conftest.SMALL, *conftest.QUIET]
# bigrams into 16 extra rows: the embedding holds rows that are not words
NGRAMS = ["data.ngrams=2", "data.buckets=16"]
UNSEEN = "zyzzyva"  # in no training text


def cli(module: str, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    """``python -m embedclf.<module> ARGS`` from the repository root, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", f"embedclf.{module}", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_same_predictions(got: list[dict], want: list[dict]) -> None:
    """Same labels; probabilities equal but for float rounding (batch sizes may differ)."""
    assert [r["label"] for r in got] == [r["label"] for r in want]
    for a, b in zip(got, want, strict=True):
        assert a["probs"] == pytest.approx(b["probs"], abs=1e-6)


def composed(name: str, overrides: list[str]):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose(name, overrides=overrides)


def paths(base: Path, run: str) -> list[str]:
    return [
        f"paths.output_dir={base / run}",
        f"paths.cache_dir={base / 'cache'}",
        f"paths.data_dir={base / 'data'}",
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("use_model")
    tree = write_tree(base / "aclImdb")
    overrides = ["experiment=seed_learned", f"data.root={tree}", *SMALL, *NGRAMS]
    cfg = composed("train", [*overrides, *paths(base, "run")])
    metrics = train(cfg)
    ckpt = base / "run" / "checkpoints" / "last.ckpt"
    checkpoint = load_checkpoint(ckpt)
    return {
        "base": base,
        "tree": tree,
        "cfg": cfg,
        "metrics": metrics,
        "ckpt": ckpt,
        "encoder": featurizer_of(checkpoint, "test"),
        "module": module_from_checkpoint(checkpoint, "test"),
    }


def test_training_left_what_the_commands_use(trained):
    saved = json.loads((trained["base"] / "run" / "metrics.json").read_text())
    assert saved["test_acc"] == trained["metrics"]["test_acc"]
    assert Path(saved["checkpoint"]) == trained["ckpt"]
    encoder = trained["encoder"]
    assert encoder.input_size == len(encoder.vocab) + 16  # n-gram rows exist


# -- predict -----------------------------------------------------------------------------------
def test_predict_texts_reproduces_the_runs_test_accuracy(trained):
    """Raw test reviews through predict_texts score exactly what training scored from the
    token cache: same preprocessing, same weights, same decision rule."""
    texts, _ = read_dataset(trained["tree"])
    results = predict.predict_texts(trained["ckpt"], texts.texts["test"])
    classes = texts.classes
    assert len(results) == len(texts.texts["test"])
    predicted = np.array([classes.index(r["label"]) for r in results])
    accuracy = float((predicted == texts.labels["test"]).mean())
    assert abs(accuracy - trained["metrics"]["test_acc"]) < 1e-6
    # and every probability equals the model's on training's own ids for those reviews
    datamodule = build_datamodule(trained["cfg"])
    ids = torch.from_numpy(padded(datamodule, "test")).long()
    with torch.inference_mode():
        expected = trained["module"].probabilities(trained["module"](ids))[:, 1].numpy()
    got = np.array([r["probs"][classes[1]] for r in results])
    np.testing.assert_allclose(np.sort(got), np.sort(expected), atol=1e-6)
    for r in results:
        assert set(r["probs"]) == set(classes)
        assert abs(sum(r["probs"].values()) - 1) < 1e-6


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batches_scored_by_threads_come_back_in_order_with_the_same_probabilities(trained, workers):
    """probabilities_of scores batches a few ahead on threads: each result is its own batch's
    (in input order), equal to scoring that batch alone; a batch that fails raises its error."""
    texts, _ = read_dataset(trained["tree"])
    reviews = texts.texts["test"]
    batches = list(predict.batched(reviews, 3))
    predictor = predict.Predictor(trained["ckpt"])
    got = list(predictor.probabilities_of(iter(batches), workers=workers))
    assert [len(p) for p in got] == [len(b) for b in batches]
    for probs, batch in zip(got, batches, strict=True):
        torch.testing.assert_close(probs, predictor.probabilities(batch), rtol=0, atol=1e-6)
    with pytest.raises(AttributeError):  # None is no text
        list(predictor.probabilities_of([reviews[:2], [None], reviews[:2]], workers=workers))


def test_predict_needs_only_the_checkpoint(trained, tmp_path, monkeypatch):
    texts = ["a great and wonderful film", "boring awful plot, hated it"]
    before = predict.predict_texts(trained["ckpt"], texts)
    alone = tmp_path / "alone"
    alone.mkdir()
    copy = alone / "model.ckpt"
    shutil.copy(trained["ckpt"], copy)
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    moved = [trained["tree"], trained["base"] / "cache"]
    for path in moved:
        shutil.move(path, hidden / path.name)
    monkeypatch.chdir(alone)  # no conf/ either
    try:
        assert predict.predict_texts(copy, texts) == before
    finally:
        for path in moved:
            shutil.move(hidden / path.name, path)
    assert len(before) == 2


def test_predict_cli_reads_stdin_and_prints_one_json_line_per_text(trained):
    texts = ["Good, great and loved it!", "", "bad awful boring", "the movie"]
    result = cli("predict", [str(trained["ckpt"]), "--batch-size", "2"], "\n".join(texts) + "\n")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = predict.predict_texts(trained["ckpt"], [t for t in texts if t])  # blank skipped
    assert_same_predictions(lines, expected)
    assert {r["label"] for r in lines} <= {"neg", "pos"}


def test_predict_files_and_dir(trained, tmp_path, capsys):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("great superb\n\nawful\n")
    second.write_text("\ufeffloved it\n")  # a byte-order mark is not text
    predict.main([str(trained["ckpt"]), str(first), str(second), "--batch-size", "1"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = predict.predict_texts(trained["ckpt"], ["great superb", "awful", "loved it"])
    assert_same_predictions(lines, expected)

    folder = tmp_path / "reviews"
    (folder / "sub").mkdir(parents=True)
    (folder / "z.txt").write_text("bad\nawful terrible")  # a whole file is one text
    (folder / "sub" / "a.txt").write_text("great")
    (folder / "ignored.md").write_text("bad")
    predict.main([str(trained["ckpt"]), "--dir", str(folder)])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in lines] == [str(folder / "sub" / "a.txt"), str(folder / "z.txt")]
    expected = predict.predict_texts(trained["ckpt"], ["great", "bad\nawful terrible"])
    assert_same_predictions(lines, expected)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_predict_table_keeps_the_asked_columns(trained, tmp_path, capsys, suffix):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"id": 7, "review": "great superb", "x": 1}, {"id": 9, "review": "awful", "x": 2}]
    path = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        path.write_text("id,review,x\n7,great superb,1\n9,awful,2\n")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    args = [str(trained["ckpt"]), "--table", str(path), "--column", "review", "--keep", "id"]
    predict.main(args)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in lines] == [7, 9]
    assert all(set(r) == {"id", "label", "probs"} for r in lines)
    assert_same_predictions(
        lines, predict.predict_texts(trained["ckpt"], ["great superb", "awful"])
    )
    with pytest.raises(SystemExit) as exit_info:
        predict.main([*args[:-1], "nope"])
    message = str(exit_info.value.code)
    assert "'nope'" in message and str(path) in message and "--keep" in message


def _bad_inputs(tmp_path: Path, ckpt: Path) -> dict[str, tuple[list[str], str]]:
    """name -> (arguments, text the error line must hold)."""
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(3)}, plain)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "epoch": 0}, foreign)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"good film\n\xff\xfe\x80 bad")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    texts = tmp_path / "texts.txt"
    texts.write_text("good\n")
    return {
        "missing checkpoint": ([str(tmp_path / "nope.ckpt"), str(texts)], "nope.ckpt"),
        "random bytes": ([str(noise), str(texts)], "noise.ckpt"),
        "plain torch.save": ([str(plain), str(texts)], "plain.ckpt"),
        "no encoder": ([str(foreign), str(texts)], "foreign.ckpt"),
        "undecodable input": ([str(ckpt), str(binary)], "binary.txt"),
        "no text": ([str(ckpt), str(empty)], "empty.txt"),
        "missing input": ([str(ckpt), str(tmp_path / "absent.txt")], "absent.txt"),
    }


def test_predict_refuses_bad_input_with_one_line(trained, tmp_path, capsys):
    for name, (args, named) in _bad_inputs(tmp_path, trained["ckpt"]).items():
        with pytest.raises(SystemExit) as exit_info:
            predict.main(args)
        message = str(exit_info.value.code)
        assert message.startswith("error: ") and "\n" not in message, name
        assert named in message, name
        assert "weights_only" not in message, name  # no advice to load it unsafely
        assert capsys.readouterr().out == "", name  # nothing printed before the error


def test_predict_cli_error_is_one_line_and_a_failure(trained, tmp_path):
    args, _ = _bad_inputs(tmp_path, trained["ckpt"])["plain torch.save"]
    result = cli("predict", args[:1], "good\n")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: ") and "plain.ckpt" in result.stderr


# -- evaluate ----------------------------------------------------------------------------------
def test_evaluate_cli_gives_the_runs_test_accuracy(trained):
    base = trained["base"]
    run = base / "eval_same"
    result = cli(
        "evaluate",
        [
            f"ckpt={trained['ckpt']}",
            f"data.root={trained['tree']}",
            f"hydra.run.dir={run}",
            f"paths.cache_dir={base / 'cache'}",
            f"paths.data_dir={base / 'data'}",
            "trainer.enable_progress_bar=false",
        ],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert abs(metrics["test_acc"] - trained["metrics"]["test_acc"]) < 1e-6
    assert abs(metrics["test_loss"] - trained["metrics"]["test_loss"]) < 1e-6
    assert metrics["test_samples"] == trained["metrics"]["test_samples"] == 80
    assert Path(metrics["checkpoint"]) == trained["ckpt"]
    assert any((run / "tensorboard").glob("events.out.tfevents.*"))


def test_evaluate_other_data_uses_the_checkpoints_vocabulary(trained):
    """A dataset where an unseen word is the most frequent: a refitted vocabulary would give it
    id 1 and shift every other id; the checkpoint's drops it, as prediction does."""
    base = trained["base"]
    other = write_tree(base / "other", per_class=6, seed=7)
    for path in sorted(other.glob("*/*/*.txt")):
        path.write_text(f"{UNSEEN} " * 30 + path.read_text())
    # a tiny training split: 0.2 held out for validation would still be fine, 13 would not
    overrides = [f"ckpt={trained['ckpt']}", f"data.root={other}", "data.val_samples=13"]
    cfg = composed("evaluate", [*overrides, *paths(base, "eval_other")])
    cfg.trainer.enable_progress_bar = False
    metrics = evaluate_cmd.evaluate(cfg)
    assert metrics["test_samples"] == 12
    saved = json.loads((base / "eval_other" / "metrics.json").read_text())
    assert saved["test_acc"] == metrics["test_acc"]

    texts, _ = read_dataset(other)
    results = predict.predict_texts(trained["ckpt"], texts.texts["test"])
    predicted = np.array([texts.classes.index(r["label"]) for r in results])
    assert abs(float((predicted == texts.labels["test"]).mean()) - metrics["test_acc"]) < 1e-6
    datamodule = build_datamodule(
        evaluate_cmd.evaluation_config(cfg), featurizer=trained["encoder"]
    )
    assert datamodule.featurizer.vocab == trained["encoder"].vocab
    assert UNSEEN not in datamodule.featurizer.vocab
    encoded = trained["encoder"].encode(texts.texts["test"])
    assert sorted(map(tuple, padded(datamodule, "test").tolist())) == sorted(
        map(tuple, encoded.tolist())
    )


def test_evaluate_refuses_a_foreign_checkpoint(trained, tmp_path):
    plain = tmp_path / "plain.ckpt"
    torch.save({"weights": torch.zeros(3)}, plain)
    cfg = composed("evaluate", [f"ckpt={plain}", *paths(tmp_path, "run")])
    with pytest.raises(CheckpointError, match=r"plain\.ckpt"):
        evaluate_cmd.evaluate(cfg)


# -- neighbours --------------------------------------------------------------------------------
def _cosine_table(trained) -> tuple[list[str], np.ndarray]:
    vocab = trained["encoder"].vocab
    weight = trained["module"].net.embedding.weight.detach()[1 : len(vocab)]
    return vocab[1:], torch.nn.functional.cosine_similarity(
        weight[:, None, :], weight[None, :, :], dim=-1
    ).numpy()


def test_neighbours_are_the_most_cosine_similar_words(trained, capsys):
    words, table = _cosine_table(trained)
    neighbours.main([str(trained["ckpt"]), "good", "Awful", UNSEEN, "-k", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for line, word in zip(lines[:2], ["good", "awful"], strict=True):
        row = words.index(word)
        order = [i for i in np.argsort(-table[row], kind="stable") if i != row][:3]
        expected = ", ".join(f"{words[i]} ({table[row, i]:.2f})" for i in order)
        assert line.split(": ", 1)[1] == expected
    assert lines[0].startswith("good: ") and lines[1].startswith("Awful: ")
    assert lines[2] == f"{UNSEEN}: not in the vocabulary ({len(words)} words)"
    # every other word, and only words: no padding row, no n-gram row
    neighbours.main([str(trained["ckpt"]), "good", "-k", "1000"])
    found = capsys.readouterr().out.split(": ", 1)[1].split(", ")
    assert sorted(item.split(" (")[0] for item in found) == sorted(w for w in words if w != "good")


def test_neighbours_fails_when_no_word_is_known(trained, capsys):
    with pytest.raises(SystemExit) as exit_info:
        neighbours.main([str(trained["ckpt"]), UNSEEN])
    assert str(exit_info.value.code).startswith("error: ") and UNSEEN in str(exit_info.value.code)
    assert "not in the vocabulary" in capsys.readouterr().out


# -- export --------------------------------------------------------------------------------------
def test_export_round_trips_and_initialises_another_run(trained, tmp_path, capsys):
    out = tmp_path / "vectors" / "learned.vec"
    export.main([str(trained["ckpt"]), str(out)])
    vocab = trained["encoder"].vocab
    weight = trained["module"].net.embedding.weight.detach().numpy()
    dim = weight.shape[1]
    assert capsys.readouterr().out.strip() == (
        f"wrote {len(vocab) - 1} word vectors of {dim} dimensions to {out}"
    )
    assert out.read_text().splitlines()[0] == f"{len(vocab) - 1} {dim}"
    vectors = load_vectors(out, cache_dir=tmp_path / "vectors_cache")
    assert vectors.words == vocab[1:]
    assert np.array_equal(np.asarray(vectors.matrix), weight[1 : len(vocab)])  # bit for bit

    base = trained["base"]
    cfg = composed(
        "train",
        [
            "experiment=seed_glove",
            f"data.root={trained['tree']}",
            *SMALL,
            "data.train_samples=null",
            "data.val_samples=0.2",
            "trainer.max_epochs=1",
            f"vectors.path={out}",
            f"vectors.dim={dim}",
            *paths(base, "from_export"),
        ],
    )
    metrics = train(cfg)
    assert metrics["vectors_coverage"] == 1.0
    second = load_checkpoint(base / "from_export" / "checkpoints" / "last.ckpt")
    assert featurizer_of(second, "second").vocab == vocab
    frozen = second["state_dict"]["net.embedding.weight"].numpy()
    assert np.array_equal(frozen[1 : len(vocab)], weight[1 : len(vocab)])


def test_evaluate_on_a_dataset_of_test_rows_only(trained):
    """Scoring reads test/ alone: a folder without train/ is scored, not refused."""
    base = trained["base"]
    only_test = write_tree(base / "only_test", per_class=5, seed=3)
    shutil.rmtree(only_test / "train")
    cfg = composed(
        "evaluate",
        [f"ckpt={trained['ckpt']}", f"data.root={only_test}", *paths(base, "eval_test_only")],
    )
    cfg.trainer.enable_progress_bar = False
    metrics = evaluate_cmd.evaluate(cfg)
    assert metrics["test_samples"] == 10 and 0 <= metrics["test_acc"] <= 1
    texts, _ = read_dataset(only_test, splits=("test",))
    results = predict.predict_texts(trained["ckpt"], texts.texts["test"])
    predicted = np.array([texts.classes.index(r["label"]) for r in results])
    assert abs(float((predicted == texts.labels["test"]).mean()) - metrics["test_acc"]) < 1e-6
    # training still needs train/, and says so in one line
    with pytest.raises(DataError, match="needs train/<class>/"):
        TextFolderDataModule(root=str(only_test)).prepare_data()


def test_batches_read_before_bad_input_are_given_before_its_error(trained):
    """A reading error (a line over --max-bytes) ends the output, after the batches read
    before it, as when batches were scored one at a time."""
    predictor = predict.Predictor(trained["ckpt"])

    def batches():
        yield ["good film"]
        yield ["bad film"]
        raise DataError("texts.txt has a line over 20 bytes")

    got = []
    with pytest.raises(DataError, match="over 20 bytes"):
        for probs in predictor.probabilities_of(batches(), workers=2):
            got.append(probs)
    assert len(got) == 2
    stopped = predictor.probabilities_of(iter([["good"]] * 5), workers=2)
    next(stopped)
    stopped.close()  # a reader that stops early (| head) ends it without an error
