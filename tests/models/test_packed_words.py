"""A checkpoint's vocabulary as two tensors (models/packed_words.py): the same words back,
old list checkpoints still read, and malformed packs refused in one line."""

from __future__ import annotations

import io

import pytest
import torch

from embedclf.models.packed_words import packed, unpack_vocab
from embedclf.util.errors import CheckpointError

WORDS = ["", "the", "café", "naïve", "日本語", "🙂", "\ud800", "a\udfffb", "İ", "x" * 300]


def saved_and_read(value):
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_a_packed_vocabulary_reads_back_word_for_word():
    state = {"format": 1, "vocab": WORDS, "maxlen": 7}
    stored = saved_and_read(packed(state))
    assert isinstance(stored["vocab"]["utf8"], torch.Tensor)  # no list for the unpickler
    assert stored["vocab"]["lengths"].tolist() == [len(w) for w in WORDS]
    assert state["vocab"] is WORDS  # the featurizer's own state is not changed
    unpack_vocab(stored, "ckpt")
    assert stored == state
    unpack_vocab(stored, "ckpt")  # a second read of the same (cached) checkpoint: a no-op
    assert stored["vocab"] == WORDS


def test_a_vocabulary_of_empty_words_only_packs_too():
    stored = saved_and_read(packed({"vocab": [""]}))
    unpack_vocab(stored, "ckpt")
    assert stored["vocab"] == [""]


@pytest.mark.parametrize(
    "vocab, message",
    [
        ({"utf8": torch.tensor([97], dtype=torch.uint8)}, "malformed vocabulary"),
        ({"utf8": torch.tensor([97.0]), "lengths": torch.tensor([1])}, "malformed vocabulary"),
        (
            {"utf8": torch.tensor([97, 98], dtype=torch.uint8), "lengths": torch.tensor([-1, 3])},
            "malformed vocabulary",
        ),
        (
            {"utf8": torch.tensor([97, 98], dtype=torch.uint8), "lengths": torch.tensor([1, 2])},
            "lengths add up to 3 characters, its text has 2",
        ),
        (
            {"utf8": torch.tensor([97, 255], dtype=torch.uint8), "lengths": torch.tensor([2])},
            "not UTF-8 \\(byte 1\\)",
        ),
        (  # 2^63 - 1 twice wraps the running sum to -2, and the total to a matching 2
            {
                "utf8": torch.tensor([97, 98], dtype=torch.uint8),
                "lengths": torch.tensor([2**63 - 1, 2**63 - 1, 2, 2]),
            },
            "its lengths overflow",
        ),
        (  # a stride-0 view of one byte claiming a terabyte
            {"utf8": torch.zeros(1, dtype=torch.uint8).expand(2**40), "lengths": torch.tensor([1])},
            "malformed vocabulary",
        ),
        (
            {
                "utf8": torch.empty(2, dtype=torch.uint8, device="meta"),
                "lengths": torch.tensor([2]),
            },
            "malformed vocabulary",
        ),
        (
            {
                "utf8": torch.tensor([97, 98], dtype=torch.uint8),
                "lengths": torch.tensor([2]).to_sparse(),
            },
            "malformed vocabulary",
        ),
    ],
)
def test_a_malformed_pack_is_refused_naming_the_file(vocab, message):
    with pytest.raises(CheckpointError, match=f"^run/last.ckpt holds .*{message}"):
        unpack_vocab({"vocab": vocab}, "run/last.ckpt")


def test_a_trained_checkpoint_packs_its_words_and_a_list_checkpoint_reads_the_same(
    seed_checkpoint, tmp_path
):
    from embedclf.predict import Predictor

    stored = torch.load(seed_checkpoint, weights_only=True)
    assert set(stored["text_featurizer"]["vocab"]) == {"utf8", "lengths"}
    # a checkpoint written before the pack held the plain list: it reads as before
    old = dict(stored)
    old["text_featurizer"] = dict(stored["text_featurizer"])
    unpack_vocab(old["text_featurizer"], "test")
    assert (
        isinstance(old["text_featurizer"]["vocab"], list)
        and len(old["text_featurizer"]["vocab"]) > 10
    )
    torch.save(old, tmp_path / "list.ckpt")
    texts = ["a great film", "dull and boring", "no words it knows: zzqx"]
    new_predictor, old_predictor = Predictor(seed_checkpoint), Predictor(tmp_path / "list.ckpt")
    assert new_predictor.featurizer == old_predictor.featurizer
    assert torch.equal(new_predictor.probabilities(texts), old_predictor.probabilities(texts))


def test_export_refuses_a_checkpoint_whose_encoder_is_malformed_in_one_line(
    seed_checkpoint, tmp_path
):
    from embedclf import export

    stored = torch.load(seed_checkpoint, weights_only=True)
    stored["text_featurizer"] = None
    torch.save(stored, tmp_path / "bad.ckpt")
    with pytest.raises(CheckpointError, match="holds no text encoder"):
        export.export_checkpoint(tmp_path / "bad.ckpt", tmp_path / "slim.ckpt")
    assert not (tmp_path / "slim.ckpt").exists()
