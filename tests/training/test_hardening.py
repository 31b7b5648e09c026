"""Issue 10's hostile and careless inputs: no code runs from a checkpoint, no silent wrong
result, every bad input a one-line error before any training time is spent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import (
    QUIET,
    SMALL,
    compose_cfg,
    glove_overrides,
    net_spec,
    run_script,
    token_stores,
    train_in_process,
)
from embedclf.models.checkpoint import load_checkpoint
from embedclf.models.recipe import EmbeddingClassifierModule
from embedclf.training.checkpoints import SafeCheckpointIO
from embedclf.training.checks import check_config
from embedclf.util.errors import (
    CheckpointError,
    ConfigError,
    TrainingError,
    UserError,
    VectorsError,
)
from embedclf.util.fileio import _host
from loopback import serve_bytes


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "epoch": 0, "payload": Payload(marker)}, path)
    return path


def one_line(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message and message.strip() == message
    return message


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A one-epoch run on the generated tree; its last.ckpt is a real embedclf checkpoint."""
    from conftest import write_tree

    base = tmp_path_factory.mktemp("trained")
    tree = write_tree(base / "aclImdb")
    train_in_process(
        base / "run",
        "experiment=seed_learned",
        *SMALL,
        "trainer.max_epochs=1",
        f"data.root={tree}",
        f"paths.data_dir={base / 'data'}",
        f"paths.cache_dir={base / 'cache'}",
    )
    return base / "run" / "checkpoints" / "last.ckpt"


def small(tree: Path, *more: str) -> list[str]:
    return ["experiment=seed_learned", *SMALL, f"data.root={tree}", *more]


# -- Bad 1: no code runs from a checkpoint ----------------------------------------------------
@pytest.mark.parametrize("setting", ["resume", "ckpt_path"])
def test_remote_checkpoint_is_refused_nothing_fetched(setting, server, tmp_path, dirs, tiny_tree):
    marker = tmp_path / "marker"
    payload = evil_checkpoint(tmp_path / "evil.ckpt", marker).read_bytes()
    server.routes["/evil.ckpt"] = serve_bytes(payload)
    url = server.url("/evil.ckpt")
    run = dirs["run"] / "remote"

    with pytest.raises(CheckpointError) as caught:
        train_in_process(run, *small(tiny_tree, f"{setting}={url}"))

    message = one_line(caught.value)
    assert message.startswith(f"{setting}={url} is remote")
    assert server.requests == [] and not marker.exists()
    assert not (run / "checkpoints").exists()  # refused before training
    # and the checkpoint reader Lightning is given refuses URLs too
    with pytest.raises(CheckpointError, match="is remote"):
        SafeCheckpointIO().load_checkpoint(url)
    assert server.requests == [] and not marker.exists()


def test_remote_resume_on_the_command_line_is_one_line(server, tmp_path, dirs, tiny_tree):
    marker = tmp_path / "marker"
    server.routes["/evil.ckpt"] = serve_bytes(
        evil_checkpoint(tmp_path / "evil.ckpt", marker).read_bytes()
    )
    url = server.url("/evil.ckpt")
    result = run_script(
        [*small(tiny_tree, f"resume={url}"), f"hydra.run.dir={dirs['run']}/cli"], dirs
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: resume={url} is remote")
    assert "Traceback" not in result.stderr
    assert server.requests == [] and not marker.exists()


@pytest.mark.parametrize("setting", ["resume", "ckpt_path"])
def test_local_checkpoint_with_a_pickle_payload_runs_nothing(setting, tmp_path, dirs, tiny_tree):
    marker = tmp_path / "marker"
    evil = evil_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError) as caught:
        train_in_process(dirs["run"] / "x", *small(tiny_tree, f"{setting}={evil}"))
    assert one_line(caught.value).startswith(f"{setting}={evil} is not a readable checkpoint")
    assert "weights_only=False" not in str(caught.value)  # torch's advice is not passed on
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        SafeCheckpointIO().load_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "target", ["os.system", "builtins.eval", "builtins.exec", "torch.optim.lr_scheduler.StepLR"]
)
def test_checkpoint_naming_another_callable_as_optimizer_is_refused(
    target, trained, tmp_path, dirs, tiny_tree
):
    marker = tmp_path / "marker"
    checkpoint = torch.load(trained, weights_only=True)
    argument = {"os.system": "command", "builtins.eval": "source", "builtins.exec": "source"}
    code = f"open({str(marker)!r}, 'w')" if "builtins" in target else f"touch {marker}"
    spec = {"_target_": target, argument.get(target, "step_size"): code}
    checkpoint["hyper_parameters"]["optimizer"] = spec
    crafted = tmp_path / "crafted.ckpt"
    torch.save(checkpoint, crafted)

    module = EmbeddingClassifierModule.load_from_checkpoint(crafted, weights_only=True)
    with pytest.raises(ConfigError, match=f"'{target}' is not a Optimizer of torch.optim"):
        module.configure_optimizers()
    assert not marker.exists()
    # resuming from it: refused too, before any optimiser step
    with pytest.raises(UserError, match=target.replace(".", r"\.")):
        train_in_process(
            dirs["run"] / "resumed", *small(tiny_tree, "trainer.max_epochs=2", f"resume={crafted}")
        )
    assert not marker.exists()


def test_optimizer_settings_must_be_plain_values():
    module = EmbeddingClassifierModule(
        net=net_spec(10, 3),
        optimizer={"_target_": "torch.optim.SGD", "lr": {"_target_": "os.getcwd"}},
    )
    with pytest.raises(ConfigError, match="not a plain value"):
        module.configure_optimizers()


# -- Bad 2: non-finite vectors, corrupted caches, a loss that diverges --------------------------
def test_non_finite_vectors_stop_the_run_naming_file_and_word(dirs, tiny_tree, tmp_path):
    vectors = tmp_path / "vecs.txt"
    vectors.write_text("the 0.1 0.2 0.3\nmovie 0.2 nan 0.1\ngood 1 2 3\n")
    run = dirs["run"] / "nan"
    with pytest.raises(VectorsError) as caught:
        train_in_process(
            run,
            *glove_overrides(tiny_tree, vectors),
            "vectors.dim=3",
        )
    message = one_line(caught.value)
    assert str(vectors) in message and "'movie'" in message
    assert not (run / "metrics.json").exists() and not (run / "checkpoints").exists()


@pytest.mark.parametrize("how", ["huge learning rate", "huge vectors"])
def test_a_loss_that_becomes_non_finite_stops_the_run(how, dirs, tiny_tree, tmp_path):
    run = dirs["run"] / "diverged"
    if how == "huge learning rate":
        overrides = small(tiny_tree, "model.optimizer.lr=1e30")
    else:
        vectors = tmp_path / "vecs.txt"
        words = ["the", "movie", "film", "plot", "and", "a", "it", "good", "bad"]
        vectors.write_text("".join(f"{w} 3e38 -3e38 3e38\n" for w in words))
        overrides = [
            *glove_overrides(tiny_tree, vectors),
            "vectors.dim=3",
        ]
    with pytest.raises(TrainingError) as caught:
        train_in_process(run, *overrides)
    assert "the training loss became" in one_line(caught.value)
    assert not (run / "metrics.json").exists()


# -- Poor: one line before any training time is spent --------------------------------------------
@pytest.fixture
def bad_files(tmp_path, trained) -> dict[str, Path]:
    random_bytes = tmp_path / "random.ckpt"
    random_bytes.write_bytes(os.urandom(4096))
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained.read_bytes()[: trained.stat().st_size // 2])
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    return {"random": random_bytes, "truncated": truncated, "empty": empty}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("ckpt_path=/nonexistent/x.ckpt", r"ckpt_path=/nonexistent/x\.ckpt does not exist"),
        ("ckpt_path={truncated}", r"ckpt_path=\S+truncated\.ckpt is not a readable checkpoint"),
        ("ckpt_path={empty}", r"ckpt_path=\S+empty\.ckpt is not a readable checkpoint"),
        ("resume=/nonexistent/last.ckpt", r"resume=/nonexistent/last\.ckpt does not exist"),
        ("resume={random}", r"resume=\S+random\.ckpt is not a readable checkpoint"),
        ("resume={truncated}", r"resume=\S+truncated\.ckpt is not a readable checkpoint"),
        ("data.maxlen=0", r"data\.maxlen=0 must be a whole number >= 1"),
        ("data.batch_size=0", r"data\.batch_size=0 must be a whole number >= 1"),
        ("data.eval_batch_size=-3", r"data\.eval_batch_size=-3 must be"),
        ("seed=abc", r"seed='abc' must be a whole number"),
        ("seed=1.5", r"seed=1\.5 must be a whole number"),
        ("data.num_words=1", r"data\.num_words=1 keeps no word"),
        ("model.net.embedding.dim=0", r"model\.net\.embedding\.dim=0 must be a whole number >= 1"),
        ("data.val_samples=1.5", r"data\.val_samples=1\.5 must be a fraction in \[0, 1\)"),
        ("data.val_samples=-1", r"data\.val_samples=-1 must be"),
        ("data.train_samples=0", r"data\.train_samples=0 must be a whole number >= 1"),
        ("data.padding=middle", r"data\.padding='middle' must be one of pre, post"),
        ("data.unseen_words=yes", r"data\.unseen_words='yes' must be drop or keep"),
        ("data.vocab_from=val", r"data\.vocab_from='val' must be one of train_file, train_rows"),
        ("data.length_buckets=maybe", r"data\.length_buckets='maybe' must be true or false"),
        ("data.val_groups=film", r"data\.val_groups='film' must be true or false"),
        ("data.features_on_device=gpu", r"data\.features_on_device='gpu' must be true or false"),
        ("model.net.init=xavier", r"model\.net\.init='xavier' must be one of keras, fasttext"),
        (
            "model=ngram model.net.encoder.weighting=tfidf",
            r"model\.net\.encoder\.weighting='tfidf' must be one of none, nb, sif",
        ),
        (
            "model.net.encoder.kind=max",
            r"model\.net\.encoder\.kind='max' must be one of flatten, mean",
        ),
        ("model=cnn model.net.encoder.pool=avg", r"encoder\.pool='avg' must be one of max, mean"),
        (
            "model=rnn model.net.encoder.cell=elman",
            r"encoder\.cell='elman' must be one of lstm, gru",
        ),
        (
            "model=transformer model.net.encoder.positions=rope",
            r"encoder\.positions='rope' must be one of learned, sinusoidal",
        ),
        ("model=cnn model.net.encoder.widths=[3,0]", r"widths=\[3, 0\] must be whole numbers >= 1"),
        ("model=cnn model.net.encoder.filters=0", r"filters=0 must be a whole number >= 1"),
        ("model=rnn model.net.encoder.layers=5", r"layers=5 must be a whole number from 1 to 4"),
        ("model=rnn model.net.encoder.hidden=1.5", r"hidden=1\.5 must be a whole number >= 1"),
        ("model=transformer model.net.encoder.heads=0", r"heads=0 must be a whole number >= 1"),
        (
            "model=cnn +model.net.encoder.filter=50",
            r"encoder\.filter is not a setting of the cnn encoder \(its settings: widths, filters",
        ),
        (
            "+model.net.encoder.widths=[3]",
            r"encoder\.widths is not a setting of the flatten encoder \(its settings: none\)",
        ),
        ("+trainer.precision=16-mixed", r"trainer\.precision=16-mixed scales the loss"),
        ("model.optimizer.lr=-0.1", r"model\.optimizer\.lr=-0\.1 must be a number above 0"),
        ("trainer.max_epochs=0", r"trainer\.max_epochs=0 trains nothing"),
        ("data.maxlen=1000000000", r"data\.maxlen=1000000000 is above 1,048,576 ids a row"),
        (
            "experiment=seed_glove vectors.dim=7",
            r"vectors\.dim=7 is not a size glove\.6B\.7d was published in; use one of 50, 100",
        ),
        ("trainer.max_epochs=two", r"trainer\.max_epochs='two' must be a whole number"),
        ("data.val_samples=0 ckpt_path=best", r"ckpt_path=best needs a validation split"),
        (
            "experiment=seed_glove vectors.max_line_bytes=abc",
            r"vectors\.max_line_bytes='abc' must be a whole number of bytes",
        ),
        (
            "callbacks=ema callbacks.ema.decay=1.5",
            r"callbacks\.ema\.decay=1\.5 must be a number in \[0, 1\)",
        ),
        ("callbacks=ema callbacks.ema.decay=x", r"callbacks\.ema\.decay='x' must be a number in"),
        ("model=cnn model.net.head.max_norm=-1", r"model\.net\.head\.max_norm=-1 must be a number"),
        ("model=cnn model.net.head.max_norm=x", r"model\.net\.head\.max_norm='x' must be a number"),
        (
            "model=cnn model.net.embedding.word_dropout=1",
            r"model\.net\.embedding\.word_dropout=1 must be a number in \[0, 1\)",
        ),
        (
            "model=cnn model.net.embedding.word_dropout=true",
            r"model\.net\.embedding\.word_dropout=True must be a number in \[0, 1\)",
        ),
        (
            "model=cnn embedding=multichannel model.net.embedding.sparse=true",
            r"sparse=true does not go with channels=2",
        ),
        ("model=rnn model.gradient_clip_val=0", r"model\.gradient_clip_val=0 must be a number"),
        ("model=rnn model.gradient_clip_val=x", r"model\.gradient_clip_val='x' must be a number"),
        (
            "model=ngram model.gradient_clip_val=1.0",
            r"model\.gradient_clip_val does not go with model\.net\.embedding\.sparse=true",
        ),
        (
            "+trainer.gradient_clip_val=1.0",
            r"trainer\.gradient_clip_val=1\.0 is not supported: .* set model\.gradient_clip_val",
        ),
        (
            "+trainer.gradient_clip_algorithm=value",
            r"trainer\.gradient_clip_algorithm='value' is not supported",
        ),
        (
            "model=rnn model.gradient_clip_val=1 data.steps_per_call=1 +trainer.precision=16-mixed",
            r"gradient_clip_val does not go with trainer\.precision=16-mixed",
        ),
        (
            "model=pooled model.gradient_clip_val=1",
            r"gradient_clip_val does not go with torch\.optim\.LBFGS",
        ),
    ],
)
def test_bad_settings_are_one_line_naming_the_setting(override, message, bad_files, tmp_path):
    overrides = override.format(**bad_files).split()
    cfg = compose_cfg("experiment=seed_learned", *overrides, output_dir=tmp_path / "run")
    with pytest.raises(UserError) as caught:
        check_config(cfg)
    assert caught.match(message), str(caught.value)
    one_line(caught.value)


def test_a_checkpoint_of_another_project_is_refused(tmp_path):
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 1}, foreign)
    with pytest.raises(CheckpointError, match="not an embedclf checkpoint"):
        load_checkpoint(foreign, "resume")
    plain = tmp_path / "plain.ckpt"
    torch.save([1, 2, 3], plain)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_checkpoint(plain, "ckpt_path")


def test_random_bytes_named_zip_as_vectors_is_one_line(dirs, tiny_tree, tmp_path):
    vectors = tmp_path / "vectors.zip"
    vectors.write_bytes(os.urandom(5000))
    run = dirs["run"] / "zip"
    with pytest.raises(UserError) as caught:
        train_in_process(
            run,
            *glove_overrides(tiny_tree, vectors),
        )
    assert one_line(caught.value).startswith(f"{vectors} is not a readable zip archive")
    assert not (run / "checkpoints").exists()


@pytest.mark.parametrize("kind", ["folder", "dangling link"])
def test_data_root_with_a_txt_that_is_not_a_file(kind, dirs, tiny_tree, tmp_path):
    root = shutil.copytree(tiny_tree, tmp_path / "copy")
    odd = root / "test" / "neg" / "x.txt"
    if kind == "folder":
        odd.mkdir()
    else:
        odd.symlink_to(tmp_path / "gone.txt")
    with pytest.raises(UserError) as caught:
        train_in_process(dirs["run"] / "odd", *small(root))
    assert str(odd) in one_line(caught.value)


def test_no_validation_split_trains_and_reports_null(dirs, tiny_tree):
    run = dirs["run"] / "noval"
    metrics = train_in_process(run, *small(tiny_tree, "data.val_samples=0"))
    written = json.loads((run / "metrics.json").read_text())
    assert written["val_acc"] is None and written["val_loss"] is None
    assert written["val_acc_best"] is None and written["val_samples"] == 0
    assert written["train_samples"] == 80 and metrics["test_samples"] == 80
    assert written["test_acc"] > 0.6
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.ckpt"]


# -- resume is exact ------------------------------------------------------------------------------
@pytest.mark.parametrize("callbacks", ["default", "ema"])
def test_resume_is_exact_and_keeps_the_best_validation_score(dirs, tiny_tree, callbacks):
    """callbacks=ema too: the resumed run trains the weights it left, and averages on from its
    average (both in last.ckpt)."""
    # a learning rate large enough that validation accuracy peaks in the first two epochs
    common = small(tiny_tree, "model.optimizer.lr=2", f"callbacks={callbacks}")
    whole = train_in_process(dirs["run"] / "whole", *common, "trainer.max_epochs=4")
    train_in_process(dirs["run"] / "half", *common, "trainer.max_epochs=2")
    half_ckpt = dirs["run"] / "half" / "checkpoints" / "last.ckpt"
    resumed = train_in_process(
        dirs["run"] / "resumed", *common, "trainer.max_epochs=4", f"resume={half_ckpt}"
    )
    for key in ("test_acc", "test_loss", "val_acc", "val_loss", "val_acc_best", "epochs"):
        assert resumed[key] == whole[key], key
    if callbacks == "default":  # the best epoch came before the resume
        assert resumed["val_acc_best"] > resumed["val_acc"]
    else:  # the average would be taken for the trained weights
        with pytest.raises(UserError, match=r"trained with callbacks=ema .* resume it with"):
            train_in_process(
                dirs["run"] / "plain",
                *small(tiny_tree, "model.optimizer.lr=2"),
                "trainer.max_epochs=4",
                f"resume={half_ckpt}",
            )
    a = torch.load(dirs["run"] / "whole/checkpoints/last.ckpt", weights_only=True)
    b = torch.load(dirs["run"] / "resumed/checkpoints/last.ckpt", weights_only=True)
    states = ["state_dict", *(["current_model_state"] if callbacks == "ema" else [])]
    assert all(torch.equal(a[s][k], b[s][k]) for s in states for k in a[s])


# -- a sweep goes on past an invalid job ----------------------------------------------------------
def test_multirun_records_an_invalid_job_and_goes_on(dirs, tiny_tree):
    sweep = dirs["run"] / "sweep"
    result = run_script(
        [
            "-m",
            *small(tiny_tree, "trainer.max_epochs=1"),
            "data.maxlen=0,20",
            f"hydra.sweep.dir={sweep}",
        ],
        dirs,
    )
    assert result.returncode == 1, result.stderr[-2000:]  # the sweep reports its failure
    [failed] = [p.parent for p in sweep.glob("*/error.txt")]
    assert "data.maxlen=0 must be a whole number" in (failed / "error.txt").read_text()
    assert not (failed / "metrics.json").exists()
    [done] = [p.parent for p in sweep.glob("*/metrics.json")]
    assert json.loads((done / "metrics.json").read_text())["epochs"] == 1
    assert "Traceback" not in result.stderr


# -- files: normal permissions, a killed writer's leftovers removed -----------------------------
def test_checkpoints_have_normal_permissions_and_dead_leftovers_are_removed(dirs, tiny_tree):
    run = dirs["run"] / "perm"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = run / "checkpoints" / f".last.ckpt.tmp-{_host()}@{dead.pid}-deadbeef"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a checkpoint")
    old = os.umask(0o022)
    try:
        train_in_process(run, *small(tiny_tree, "trainer.max_epochs=1"))
    finally:
        os.umask(old)
    assert not leftover.exists()
    files = [p for p in run.rglob("*") if p.is_file() and ".hydra" not in p.parts]
    files += [p for store in token_stores(dirs["cache"]) for p in store.iterdir()]
    assert any(p.name == "last.ckpt" for p in files) and any(p.suffix == ".npy" for p in files)
    modes = {str(p.relative_to(p.parents[1])): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {"0o644"}, modes


def test_quiet_overrides_are_valid():
    """QUIET (used by every in-process run) only names settings that exist."""
    cfg = compose_cfg(*QUIET)
    assert cfg.plot_curves is False and cfg.projector_words == 0
