"""Checkpoints written without zip CRC-32 sums (training/checkpoints.py:write_checkpoint):
read back the same, the process's own torch setting kept, nothing left by a failed write."""

from __future__ import annotations

import zipfile

import pytest
import torch

from embedclf.training.checkpoints import write_checkpoint


@pytest.mark.parametrize("setting", [True, False])
def test_a_checkpoint_is_written_without_crc_sums_and_reads_back_the_same(setting, tmp_path):
    state = {"weight": torch.randn(300, 7), "step": 3, "words": ["a", "b"]}
    torch.serialization.set_crc32_options(setting)
    try:
        write_checkpoint(state, tmp_path / "last.ckpt")
        assert torch.serialization.get_crc32_options() is setting  # the caller's, unchanged
    finally:
        torch.serialization.set_crc32_options(True)
    records = zipfile.ZipFile(tmp_path / "last.ckpt").infolist()
    assert records and all(record.CRC == 0 for record in records)
    back = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert torch.equal(back["weight"], state["weight"]) and back["step"] == 3
    assert back["words"] == ["a", "b"]


def test_a_failed_write_leaves_no_file_and_the_setting_as_it_was(tmp_path):
    with pytest.raises(Exception):  # noqa: B017  (torch's pickler error type varies)
        write_checkpoint({"code": lambda: 0}, tmp_path / "last.ckpt")
    assert torch.serialization.get_crc32_options() is True
    assert list(tmp_path.iterdir()) == []
