"""vectors.concat: each word's vectors from more files put beside the main ones (zeros where a
file lacks the word), under any encoder; bad entries are refused in one line before a run."""

from __future__ import annotations

import zipfile

import pytest
import torch

from conftest import SMALL, compose_cfg, train_in_process
from embedclf.predict import Predictor
from embedclf.training.checks import check_run
from embedclf.util.errors import UserError


def test_each_words_row_is_the_main_vectors_then_the_concat_files(dirs, tiny_tree, tmp_path):
    main = tmp_path / "glove.txt"
    main.write_text("good 1 2 3\nbad -1 -2 -3\nthe 0.5 0.5 0.5\n")
    more = tmp_path / "word2vec.vec"  # word2vec's header line; "plot" only here, "the" not
    more.write_text("3 2\ngood 7 8\nbad -7 -8\nplot 4 5\n")
    metrics = train_in_process(
        dirs["run"],
        "experiment=sentence_cnn",
        f"vectors.path={main}",
        "vectors.dim=3",
        f"vectors.concat=[{more}]",
        "model.net.embedding.freeze=true",  # the rows stay as they were built
        *SMALL,
        "data=imdb",
        f"data.root={tiny_tree}",
    )
    predictor = Predictor(metrics["checkpoint"])
    index = predictor.featurizer.word_index
    weight = torch.load(metrics["checkpoint"], weights_only=True)["state_dict"][
        "net.embedding.weight"
    ]
    assert weight.shape[1] == 5
    assert weight[index["good"]].tolist() == [1, 2, 3, 7, 8]
    assert weight[index["bad"]].tolist() == [-1, -2, -3, -7, -8]
    assert weight[index["the"]].tolist() == [0.5, 0.5, 0.5, 0, 0]
    assert weight[index["plot"]].tolist() == [0, 0, 0, 4, 5]
    assert predictor.probabilities(["good plot", "bad"]).shape == (2, 2)


def test_kims_two_channels_each_start_from_both_files(dirs, tiny_tree, tmp_path):
    main = tmp_path / "glove.txt"
    main.write_text("good 1 2 3\nbad -1 -2 -3\n")
    more = tmp_path / "word2vec.vec"
    more.write_text("good 7 8\nplot 4 5\n")
    metrics = train_in_process(
        dirs["run"],
        "experiment=sentence_rnn",
        "embedding=multichannel",
        f"vectors.path={main}",
        "vectors.dim=3",
        f"vectors.concat=[{more}]",
        *SMALL,
        "model.optimizer.lr=0.05",
        "data=imdb",
        f"data.root={tiny_tree}",
    )
    state = torch.load(metrics["checkpoint"], weights_only=True)["state_dict"]
    static, tuned = state["net.embedding.static.weight"], state["net.embedding.tuned.weight"]
    index = Predictor(metrics["checkpoint"]).featurizer.word_index
    assert static.shape[1] == tuned.shape[1] == 5
    assert static[index["good"]].tolist() == [1, 2, 3, 7, 8]  # frozen: as built
    assert static[index["plot"]].tolist() == [0, 0, 0, 4, 5]
    assert not torch.equal(tuned[index["good"]], static[index["good"]])  # tuned with the task


@pytest.mark.parametrize(
    "value, message",
    [
        ("[/no/such/word2vec.vec]", r"^vectors\.concat\[0\]=/no/such/word2vec\.vec does not exist"),
        ("3", r"^vectors\.concat=3 must be a list of vectors files"),
        ("[1,2]", r"^vectors\.concat=\[1, 2\] must be a list of vectors files"),
    ],
)
def test_a_bad_concat_entry_is_one_line_naming_it(dirs, value, message):
    cfg = compose_cfg("experiment=sentence_cnn", f"vectors.concat={value}")
    with pytest.raises(UserError, match=message) as caught:
        check_run(cfg)
    assert "\n" not in str(caught.value)


def test_a_concat_zip_of_several_files_says_to_unzip_the_one_to_read(dirs, tiny_tree, tmp_path):
    main = tmp_path / "glove.txt"
    main.write_text("good 1 2 3\n")
    both = tmp_path / "two.zip"
    with zipfile.ZipFile(both, "w") as archive:
        archive.writestr("a.vec", "good 7 8\n")
        archive.writestr("b.vec", "good 9 9\n")
    with pytest.raises(UserError) as caught:
        train_in_process(
            dirs["run"],
            "experiment=sentence_cnn",
            f"vectors.path={main}",
            "vectors.dim=3",
            f"vectors.concat=[{both}]",
            *SMALL,
            "data=imdb",
            f"data.root={tiny_tree}",
        )
    message = str(caught.value)
    assert message == (
        f"{both} holds 2 files; unzip the one vectors.concat[0] should read and name that file: "
        "a.vec, b.vec"
    )
