"""Every Hydra command starts as a user runs it, with no ``hydra.run.dir`` given: its run
directory is named by the ``${embedclf.run_id:}`` resolver, which each command registers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize(
    "script", ["train.py", "-m embedclf.prepare", "-m embedclf.pretrain", "-m embedclf.evaluate"]
)
def test_each_command_names_its_run_directory(script, dirs, tmp_path):
    command = [sys.executable, *script.split(), "data.root=/nonexistent/aclImdb"]
    command[1] = str(REPO / command[1]) if command[1] == "train.py" else command[1]
    if script.endswith("evaluate"):
        command.append("ckpt=/nonexistent/last.ckpt")
    env = {"EMBEDCLF_DATA_DIR": str(dirs["data"]), "EMBEDCLF_CACHE_DIR": str(dirs["cache"])}
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    # it got as far as the data (or checkpoint): a one-line error about it, not the config
    assert result.returncode == 1, result.stderr[-2000:]
    assert "/nonexistent" in result.stderr and "Traceback" not in result.stderr
    assert list((tmp_path / "outputs").glob("*/runs/*")), result.stderr[-2000:]
