"""Issue 18's cases: no run or file reported as good when it is not."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import QUIET, REPO, SMALL, train_in_process
from embedclf import export
from embedclf.runs.summary import summarize
from embedclf.util.errors import UserError


@pytest.fixture
def checkpoint(seed_checkpoint) -> Path:
    return seed_checkpoint


def test_export_refuses_devices_fifos_and_checkpoints(checkpoint, tmp_path, capsys):
    fifo = tmp_path / "pipe.vec"
    os.mkfifo(fifo)
    victim = tmp_path / "victim.ckpt"
    shutil.copy(checkpoint, victim)
    other = tmp_path / "other.ckpt"
    shutil.copy(checkpoint, other)
    device = tmp_path / "full"  # /dev/full's twin: a broken guard must not replace the real one
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    cases = {
        "a device (/dev/full)": ([str(victim), str(device)], "is not a regular file"),
        "fifo": ([str(victim), str(fifo)], "is not a regular file"),
        "itself": ([str(victim), str(victim)], "is the checkpoint being exported"),
        "another checkpoint": ([str(victim), str(other)], "--force to replace it"),
    }
    for name, (args, expected) in cases.items():
        with pytest.raises(SystemExit) as caught:
            export.main(args)
        assert expected in str(caught.value.code), name
    assert device.is_char_device() and fifo.is_fifo()
    assert victim.read_bytes() == checkpoint.read_bytes() == other.read_bytes()  # untouched
    export.main([str(victim), str(other), "--force"])  # asked for: replaced
    assert other.read_text().split()[1] == "8"  # word2vec text: "N 8" (8-d embedding)


def test_a_new_run_in_a_used_directory_never_reports_the_old_results(dirs, tiny_tree):
    run = dirs["run"] / "reused"
    good = train_in_process(run, "experiment=seed_learned", *SMALL, f"data.root={tiny_tree}")
    old = json.loads((run / "metrics.json").read_text())
    assert old["test_acc"] == good["test_acc"]
    with pytest.raises(UserError, match="training loss became"):
        train_in_process(
            run,
            "experiment=seed_learned",
            *SMALL,
            f"data.root={tiny_tree}",
            "model.optimizer.lr=1e30",
        )
    assert not (run / "metrics.json").exists()  # the failed run left none of its own
    assert json.loads((run / "metrics.json.previous").read_text()) == old
    (dirs["run"] / "listed").mkdir()
    shutil.copytree(run, dirs["run"] / "listed" / "reused")
    hydra = dirs["run"] / "listed" / "reused" / ".hydra"  # as a train.py run holds it
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text("- seed=0\n")
    [listed] = summarize(dirs["run"] / "listed").runs
    assert not listed.ok and "killed, or still running" in listed.status


def test_summarize_reports_malformed_metrics_as_failed(tmp_path):
    for name, text in (("list", "[0.9, 0.8]"), ("string", '{"test_acc": "0.9", "epochs": 3}')):
        run = tmp_path / name / "seed=0"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(text)
    [listed] = summarize(tmp_path / "list").runs
    assert not listed.ok and "is a JSON list, not an object" in listed.status
    [stringly] = summarize(tmp_path / "string").runs
    assert not stringly.ok and "test_acc is '0.9', not a number" in stringly.status


def signalled_training(dirs, tiny_tree, run: Path, sig: signal.Signals, delay: float) -> tuple:
    """``train.py`` for ever on the tiny tree, sent ``sig`` ``delay`` seconds after its first
    ``last.ckpt``; its exit status and stderr."""
    env = dict(os.environ, EMBEDCLF_CACHE_DIR=str(dirs["cache"]))
    process = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            "experiment=seed_learned",
            *SMALL,
            *QUIET,
            "trainer.max_epochs=100000",
            f"data.root={tiny_tree}",
            f"hydra.run.dir={run}",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C heard, as in a terminal: a shell's background job (`cmd &`, and so this
        # suite run that way) starts its children with SIGINT ignored, and Python keeps that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(delay)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


def test_sigterm_during_fit_exits_143_naming_the_checkpoint(dirs, tiny_tree, tmp_path):
    run = tmp_path / "run"
    returncode, stderr = signalled_training(dirs, tiny_tree, run, signal.SIGTERM, 0.0)
    assert returncode == 143, stderr[-2000:]
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: stopped by SIGTERM in epoch "), last_line
    assert f"resume={run / 'checkpoints' / 'last.ckpt'}" in last_line
    assert not (run / "metrics.json").exists()


def test_checkpoints_whose_parts_disagree_are_refused_at_load(checkpoint, tmp_path, capsys):
    import torch

    from embedclf import predict
    from embedclf.models.packed_words import unpack_vocab

    def crafted(name: str, change) -> str:
        data = torch.load(checkpoint, weights_only=True)
        change(data)
        path = tmp_path / f"{name}.ckpt"
        torch.save(data, path)
        return str(path)

    def words_of(data) -> list[str]:  # the checkpoint holds them packed (models/packed_words)
        state = dict(data["text_featurizer"])
        unpack_vocab(state, "test")
        return state["vocab"]

    def nan_weight(data):
        data["state_dict"]["net.head.0.weight"][0, 0] = float("nan")

    cases = {
        "classes": (
            lambda d: d["text_featurizer"].update(classes=["a", "b", "c"]),
            "3 classes but a head of 1 outputs",
        ),
        "maxlen": (
            lambda d: d["text_featurizer"].update(maxlen=100),
            "maxlen 100 but a flatten model of 40",
        ),
        "ids": (
            lambda d: d["text_featurizer"].update(vocab=[*words_of(d), "zz"]),
            "feature ids but",
        ),
        "nan": (nan_weight, "non-finite values in net.head.0.weight"),
        "empty": (lambda d: d["text_featurizer"].update(vocab=[""]), "its vocabulary is empty"),
    }
    texts = tmp_path / "texts.txt"
    texts.write_text("good film\n")
    for name, (change, expected) in cases.items():
        with pytest.raises(SystemExit) as caught:
            predict.main([crafted(name, change), str(texts)])
        message = str(caught.value.code)
        assert "is inconsistent" in message and expected in message, (name, message)
        assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit, match=r"is a directory; give the path of a \.ckpt file"):
        predict.main([str(tmp_path), str(texts)])


def test_resume_with_nothing_left_to_train_says_so(checkpoint, dirs, tiny_tree):
    with pytest.raises(UserError, match=r"has trained 3 epochs already, and trainer\.max_epochs=3"):
        train_in_process(
            dirs["run"],
            "experiment=seed_learned",
            *SMALL,
            f"data.root={tiny_tree}",
            f"resume={checkpoint}",
        )


def test_predict_reads_bounded_chunks_and_refuses_endless_lines(checkpoint, tmp_path, capsys):
    from embedclf import predict

    started = time.monotonic()
    with pytest.raises(SystemExit) as caught:
        predict.main([str(checkpoint), "/dev/zero"])  # never a newline: refused, not read on
    assert "/dev/zero has a line over 10,485,760 bytes" in str(caught.value.code)
    assert time.monotonic() - started < 30
    texts = tmp_path / "texts.txt"
    texts.write_text("good film\n" + "great " * 10 + "\n")
    with pytest.raises(SystemExit, match=r"has a line over 20 bytes; --max-bytes N"):
        predict.main([str(checkpoint), str(texts), "--max-bytes", "20"])
    predict.main([str(checkpoint), str(texts), "--max-bytes", "100"])
    assert len(capsys.readouterr().out.splitlines()) == 2


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("experiment=does_not_exist", "Could not find 'experiment/does_not_exist'; Available"),
        ("foo=1", "Could not override 'foo'. To append to your config use +foo=1"),
        ("data.foo=1", "Could not override 'data.foo'"),
    ],
)
def test_a_config_hydra_cannot_compose_is_one_line(override, expected):
    from conftest import run_script

    result = run_script([override])
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    if "Available" in expected:
        assert "seed_learned, seed_scratch, sentence_cnn" in lines[0]  # the choices, listed


def _failing_fsync(monkeypatch, code: int, suffix: str = "") -> None:
    """``os.fsync`` of files whose name ends with ``suffix`` fails as a full (or read-only)
    disk would; the others are synced."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").split(".tmp")[0].endswith(suffix):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_a_full_or_read_only_disk_is_one_line_naming_the_path(dirs, tiny_tree, monkeypatch):
    import errno

    from embedclf.data.datamodule import TextFolderDataModule

    _failing_fsync(monkeypatch, errno.ENOSPC)
    data = TextFolderDataModule(root=str(tiny_tree), cache_dir=str(dirs["cache"]))
    with pytest.raises(UserError) as caught:
        data.prepare_data()
    message = str(caught.value)
    assert "no space left" in message and str(dirs["cache"]) in message and "MB free" in message
    assert not [p for p in Path(dirs["cache"]).rglob("*") if p.is_file() and "lock" not in p.name]
    monkeypatch.undo()
    _failing_fsync(monkeypatch, errno.EROFS, suffix=".ckpt")
    with pytest.raises(UserError, match=r"cannot write .*\.ckpt: Read-only file system"):
        train_in_process(dirs["run"], "experiment=seed_learned", *SMALL, f"data.root={tiny_tree}")
    assert not list((dirs["run"] / "checkpoints").glob("*.ckpt"))


def test_ctrl_c_during_fit_is_one_line_exit_130_and_every_checkpoint_whole(dirs, tiny_tree):
    """One batch an epoch and a checkpoint every epoch: most of the run is checkpoint
    writing, so the SIGINT lands in or near one; every file left must load."""
    import torch

    run = dirs["run"] / "interrupted"
    returncode, stderr = signalled_training(dirs, tiny_tree, run, signal.SIGINT, 0.3)
    assert returncode == 130, stderr[-2000:]
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: interrupted (Ctrl-C) in epoch "), last_line
    assert f"resume={run / 'checkpoints' / 'last.ckpt'}" in last_line
    assert "Traceback" not in stderr and not (run / "metrics.json").exists()
    files = sorted((run / "checkpoints").iterdir())
    assert all(f.suffix == ".ckpt" for f in files), files  # no staging file left
    for path in files:
        torch.load(path, weights_only=True)


def test_ctrl_c_inside_a_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    import torch

    from embedclf.training.checkpoints import SafeCheckpointIO

    path = tmp_path / "last.ckpt"
    io_ = SafeCheckpointIO()
    io_.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    def half_then_ctrl_c(obj, file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        io_.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_ctrl_c_outside_training_is_one_line_exit_130(capsys):
    from embedclf.util.cli import exit_on_user_error

    @exit_on_user_error
    def scoring() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as caught:
        scoring()
    assert caught.value.code == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: interrupted (Ctrl-C); nothing half-written was kept: run it again"]


def test_ctrl_c_while_scoring_is_one_line_not_lightnings_silent_exit():
    from embedclf.training.scoring import score
    from embedclf.util.errors import Interrupted

    class Stopped:  # Lightning's answer to a Ctrl-C inside validate/test: sys.exit(1)
        interrupted = True

        def validate(self, *args, **kwargs):
            raise SystemExit(1)

        test = validate

    class Data:
        def sizes(self):
            return {"val": 5, "test": 5}

    with pytest.raises(Interrupted, match=r"interrupted \(Ctrl-C\) while scoring the val split"):
        score(Stopped(), None, Data(), None)


def test_resume_from_an_inference_checkpoint_is_refused_in_one_line(
    checkpoint, dirs, tiny_tree, tmp_path
):
    slim = tmp_path / "slim.ckpt"
    export.export_checkpoint(checkpoint, slim)
    with pytest.raises(UserError, match=r"is an inference checkpoint \(no optimiser state"):
        train_in_process(
            dirs["run"],
            "experiment=seed_learned",
            *SMALL,
            f"data.root={tiny_tree}",
            f"resume={slim}",
            "trainer.max_epochs=9",
        )
