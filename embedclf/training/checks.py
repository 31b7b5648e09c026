"""Settings checked before any time is spent, each refused with one line naming the setting.

:func:`check_config` needs only the composed config; :func:`check_against_data` runs once the
data module is set up (before fitting), where the checkpoints a run names are compared with
the data's featurizer.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig

from embedclf.data.datamodule import VOCAB_FROM, TextFolderDataModule
from embedclf.models.checkpoint import featurizer_of, load_checkpoint
from embedclf.models.classifier import INITS
from embedclf.models.encoders import ENCODERS
from embedclf.models.encoders.base import whole
from embedclf.text.featurizer import MAX_FEATURES
from embedclf.text.tokenizer import SIDES
from embedclf.util.errors import ConfigError
from embedclf.vectors.sources import concat_files


def _number(value: Any) -> bool:
    """An ``int`` or ``float`` and not a ``bool``."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _schedule_ended(checkpoint: dict) -> bool:
    """Whether a checkpoint's scheduler has brought every learning rate to 0 (the end of a
    decay to 0 such as ``LinearLR(end_factor=0)``), where training on would update nothing."""
    if not checkpoint.get("lr_schedulers"):
        return False
    groups = [g for state in checkpoint.get("optimizer_states", []) for g in state["param_groups"]]
    return bool(groups) and all(float(group.get("lr", 1.0)) == 0.0 for group in groups)


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check_config(cfg: DictConfig) -> None:
    """Refuse settings that cannot work, each with a one-line error naming the setting."""
    data = cfg.data
    _require(
        whole(cfg.seed) and 0 <= cfg.seed < 2**32,
        f"seed={cfg.seed!r} must be a whole number from 0 to 2**32 - 1, e.g. seed=0",
    )
    threads = cfg.get("torch_threads")
    _require(
        threads is None or (whole(threads) and threads >= 1),
        f"torch_threads={threads!r} must be a whole number >= 1, or null for torch's default",
    )
    for key in ("maxlen", "batch_size", "eval_batch_size", "steps_per_call"):
        value = data.get(key, 1)
        _require(whole(value) and value >= 1, f"data.{key}={value!r} must be a whole number >= 1")
    num_words = data.num_words
    _require(
        num_words is None or (whole(num_words) and num_words >= 2),
        f"data.num_words={num_words!r} keeps no word (it keeps num_words - 1); use 2 or more, "
        "or null for all",
    )
    for key in ("padding", "truncating"):
        _require(data[key] in SIDES, f"data.{key}={data[key]!r} must be one of {', '.join(SIDES)}")
    unseen = data.get("unseen_words", "drop")
    _require(unseen in ("drop", "keep"), f"data.unseen_words={unseen!r} must be drop or keep")
    vocab_from = data.get("vocab_from", "train_file")
    _require(
        vocab_from in VOCAB_FROM,
        f"data.vocab_from={vocab_from!r} must be one of {', '.join(VOCAB_FROM)}",
    )
    for key in ("length_buckets", "val_groups", "features_on_device"):
        value = data.get(key, False)
        _require(isinstance(value, bool), f"data.{key}={value!r} must be true or false")
    val = data.val_samples
    _require(
        (whole(val) and val >= 0) or (isinstance(val, float) and 0 <= val < 1),
        f"data.val_samples={val!r} must be a fraction in [0, 1) or a whole count of reviews",
    )
    train = data.train_samples
    _require(
        train is None or (whole(train) and train >= 1),
        f"data.train_samples={train!r} must be a whole number >= 1, or null for the rest",
    )
    _require(
        whole(data.get("ngrams", 1)) and data.get("ngrams", 1) >= 1,
        f"data.ngrams={data.get('ngrams')!r} must be 1 (words only) or more",
    )
    if data.get("ngrams", 1) > 1:
        buckets = data.get("buckets", 0)
        _require(whole(buckets) and buckets >= 1, f"data.buckets={buckets!r} must be >= 1")
    check_net(cfg.model.net)
    precision = str(cfg.trainer.get("precision", "32-true"))
    _check_clipping(cfg, precision)
    check_run(cfg)
    ema = (cfg.get("callbacks") or {}).get("ema")  # a moving average of the weights
    if ema:
        decay = ema.get("decay", 0.999)
        _require(
            _number(decay) and 0 <= decay < 1,
            f"callbacks.ema.decay={decay!r} must be a number in [0, 1): the share of the "
            "average kept at each update",
        )
    epochs = cfg.trainer.get("max_epochs")
    _require(
        epochs is None or (whole(epochs) and epochs >= -1),
        f"trainer.max_epochs={epochs!r} must be a whole number",
    )
    _require(
        not (precision.startswith("16") and data.get("steps_per_call", 1) > 1),
        f"trainer.precision={precision} scales the loss for each update, which Lightning only "
        "does for the last update of a step; set data.steps_per_call=1, or use bf16-mixed",
    )
    choice = cfg.get("ckpt_path", "last")
    if val == 0:
        _require_validation(choice, 0, "data.val_samples=0")
    if choice not in ("last", "best"):
        load_checkpoint(choice, "ckpt_path")
    if cfg.get("resume"):
        resumed = load_checkpoint(cfg.resume, "resume")
        _require(
            "optimizer_states" in resumed,
            f"resume={cfg.resume} is an inference checkpoint (no optimiser state: export "
            "--format checkpoint); resume from the run's own checkpoints/last.ckpt",
        )
        _require(
            "current_model_state" not in resumed or bool(ema),
            f"resume={cfg.resume} was trained with callbacks=ema (its state_dict is the average, "
            "its trained weights beside it); resume it with callbacks=ema",
        )


def _check_clipping(cfg: DictConfig, precision: str) -> None:
    """``model.gradient_clip_val``: a length above 0, with an optimiser and precision whose
    gradients it can clip; Lightning's own clipping settings, which manual optimisation does
    not support, refused in favour of it."""
    for key in ("gradient_clip_val", "gradient_clip_algorithm"):
        value = cfg.trainer.get(key)
        _require(
            value is None,
            f"trainer.{key}={value!r} is not supported: embedclf steps its optimiser itself; "
            "set model.gradient_clip_val (a norm) instead",
        )
    clip = cfg.model.get("gradient_clip_val")
    if clip is None:
        return
    _require(
        _number(clip) and clip > 0,
        f"model.gradient_clip_val={clip!r} must be a number above 0 (the longest gradient an "
        "update takes), or null for none",
    )
    _require(
        not cfg.model.net.embedding.get("sparse", False),
        "model.gradient_clip_val does not go with model.net.embedding.sparse=true (a sparse "
        "gradient has no norm to clip): set one of them off",
    )
    _require(
        not precision.startswith("16"),
        f"model.gradient_clip_val does not go with trainer.precision={precision}: the loss "
        "scale is removed after the update's gradient is taken; use bf16-mixed or 32-true",
    )
    optimizer = str(cfg.model.optimizer.get("_target_", ""))
    _require(
        not optimizer.endswith("LBFGS"),
        f"model.gradient_clip_val does not go with {optimizer}: its line search compares "
        "the gradients it evaluates, and bounds the step itself; set it to null",
    )


def check_net(net: Any) -> None:
    """The ``model.net`` spec: an encoder kind that exists, a whole embedding width, a known
    initialisation, and only settings the encoder takes, with known choices and whole numbers
    within their bounds."""
    dim = net.embedding.get("dim")
    _require(
        whole(dim) and dim >= 1, f"model.net.embedding.dim={dim!r} must be a whole number >= 1"
    )
    kind = net.encoder.get("kind")
    _require(
        kind in ENCODERS, f"model.net.encoder.kind={kind!r} must be one of {', '.join(ENCODERS)}"
    )
    init = net.get("init", "keras")
    _require(init in INITS, f"model.net.init={init!r} must be one of {', '.join(INITS)}")
    max_norm = net.head.get("max_norm") if net.get("head") else None
    _require(
        max_norm is None or (_number(max_norm) and max_norm > 0),
        f"model.net.head.max_norm={max_norm!r} must be a number above 0, or null (no constraint)",
    )
    word_dropout = net.embedding.get("word_dropout", 0.0)
    _require(
        _number(word_dropout) and 0 <= word_dropout < 1,
        f"model.net.embedding.word_dropout={word_dropout!r} must be a number in [0, 1) (0: "
        "every word of every training row is read)",
    )
    channels = net.embedding.get("channels", 1)
    _require(
        channels in (1, 2) and not (channels == 2 and ENCODERS[kind].bag),
        f"model.net.embedding.channels={channels!r} must be 1, or 2 (embedding=multichannel) "
        f"under an encoder other than {', '.join(k for k, e in ENCODERS.items() if e.bag)}",
    )
    _require(
        not (channels == 2 and net.embedding.get("sparse", False)),
        "model.net.embedding.sparse=true does not go with channels=2 (embedding=multichannel): "
        "set model.net.embedding.sparse=false",
    )
    _check_encoder_settings(kind, net.encoder)


def _check_encoder_settings(kind: str, settings: Any) -> None:
    """Each of the encoder's settings is one it takes, a setting that names one of a few
    choices names one of them, and a whole-number setting is within its bounds (else the
    encoder's constructor would fail inside Hydra's instantiate, after the data was read)."""
    encoder = ENCODERS[kind]
    parameters = inspect.signature(encoder.__init__).parameters
    own = [
        name
        for name, p in parameters.items()
        if name not in ("self", "dim", "seq_len", "rows")
        and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    for name in settings:
        _require(
            name == "kind" or name in own or takes_any,
            f"model.net.encoder.{name} is not a setting of the {kind} encoder "
            f"(its settings: {', '.join(own) or 'none'})",
        )
    try:
        encoder.check_settings(settings, prefix="model.net.encoder.")
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _require_validation(choice: str, validation_rows: int, why: str) -> None:
    """``ckpt_path=best`` picks an epoch by its validation score: it needs validation rows."""
    _require(
        not (choice == "best" and validation_rows == 0),
        f"ckpt_path=best needs a validation split to pick the best epoch, but {why} leaves "
        "none; use ckpt_path=last or more validation reviews",
    )


def check_against_data(cfg: DictConfig, datamodule: TextFolderDataModule) -> None:
    """Before fitting: the checkpoints ``resume`` and ``ckpt_path`` name must have been trained
    on this run's featurizer, and ``ckpt_path=best`` needs validation reviews to pick by."""
    _require_validation(
        cfg.ckpt_path, datamodule.sizes()["val"], f"data.val_samples={cfg.data.val_samples}"
    )
    for setting in ("resume", "ckpt_path"):
        path = cfg.get(setting)
        if not path or path in ("last", "best"):
            continue
        checkpoint = load_checkpoint(path, setting)
        theirs = featurizer_of(checkpoint, f"{setting}={path}")
        epochs, wanted = int(checkpoint.get("epoch", -1)) + 1, cfg.trainer.get("max_epochs")
        _require(
            setting != "resume" or wanted in (None, -1) or wanted > epochs,
            f"resume={path} has trained {epochs} epochs already, and trainer.max_epochs="
            f"{wanted} asks for no more; set trainer.max_epochs above {epochs}",
        )
        _require(
            setting != "resume" or not _schedule_ended(checkpoint),
            f"resume={path} has reached the end of its learning-rate schedule (model.scheduler: "
            f"lr 0 after {epochs} epochs), so more epochs would not change it; train anew "
            f"with trainer.max_epochs={wanted} instead",
        )
        _require(
            theirs == datamodule.featurizer,
            f"{setting}={path} was trained with another vocabulary, tokeniser or padding "
            "than this run's data settings; use the data settings it was trained with",
        )


def check_run(cfg: DictConfig) -> None:
    """Settings that would reach a library unchecked: a learning rate, the epoch count, the
    device, the input length and the vectors' size."""
    lr = cfg.model.get("optimizer", {}).get("lr")
    _require(
        lr is None or (_number(lr) and lr > 0),
        f"model.optimizer.lr={lr!r} must be a number above 0, e.g. model.optimizer.lr=0.001",
    )
    _require(
        cfg.trainer.get("max_epochs") != 0,
        "trainer.max_epochs=0 trains nothing; use 1 or more (or -1 for no limit)",
    )
    accelerator = str(cfg.trainer.get("accelerator", "cpu"))
    _require(
        accelerator not in ("gpu", "cuda") or torch.cuda.is_available(),
        f"trainer.accelerator={accelerator} needs a CUDA GPU and torch sees none "
        f"(torch {torch.__version__}); use trainer=cpu",
    )
    maxlen = cfg.data.get("maxlen", 1)
    _require(
        not whole(maxlen) or maxlen <= MAX_FEATURES,
        f"data.maxlen={maxlen} is above {MAX_FEATURES:,} ids a row; use a smaller maxlen",
    )
    vectors = cfg.get("vectors")
    dims = vectors.get("dims") if vectors else None
    _require(
        not dims or vectors.get("path") or vectors.get("dim") in dims,
        f"vectors.dim={vectors.get('dim') if vectors else None} is not a size "
        f"{vectors.get('name') if vectors else ''} was published in; use one of "
        f"{', '.join(map(str, dims or []))}",
    )
    concat = vectors.get("concat") if vectors else None
    _require(
        concat is None
        or (isinstance(concat, ListConfig | list) and all(isinstance(c, str) for c in concat)),
        f"vectors.concat={concat!r} must be a list of vectors files, "
        "e.g. vectors.concat=[/data/word2vec.vec]",
    )
    concat_files(concat or [], cfg.get("paths", {}).get("data_dir"))  # each file exists
    limit = vectors.get("max_line_bytes", 1) if vectors else 1
    _require(
        whole(limit) and limit >= 1,
        f"vectors.max_line_bytes={limit!r} must be a whole number of bytes, 1 or more",
    )
