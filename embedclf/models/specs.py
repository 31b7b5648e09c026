"""Optimiser and scheduler specs (``_target_`` + settings), checked and built without Hydra.

Specs come from configs and from checkpoints' hyperparameters; a checkpoint is data, so its
spec may only name an optimiser (or scheduler) class of torch, or this project's own
(``embedclf.models.sparse_rows``), with plain arguments.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import torch

from embedclf.util.errors import ConfigError

OPTIMIZER_MODULE = ("torch.optim", "embedclf.models.sparse_rows")


SCHEDULER_MODULE = "torch.optim.lr_scheduler"


def spec_class(spec: Mapping[str, Any], module: str | tuple[str, ...], base: type) -> type:
    """The ``base`` subclass of ``module`` (or of one of several) that ``spec["_target_"]``
    names; ConfigError if it names anything else (checked before a checkpoint is trusted, and
    before building)."""
    modules = (module,) if isinstance(module, str) else module
    target = spec.get("_target_") if isinstance(spec, Mapping) else None
    name = target.rpartition(".")[2] if isinstance(target, str) else ""
    owner = target.rpartition(".")[0] if isinstance(target, str) else ""
    found = getattr(importlib.import_module(owner), name, None) if owner in modules else None
    if not (name and isinstance(found, type) and issubclass(found, base)):
        raise ConfigError(
            f"{target!r} is not a {base.__name__} of {' or '.join(modules)}; name one such as "
            f"{modules[0]}.{'Adam' if base is torch.optim.Optimizer else 'StepLR'}"
        )
    return found


def build_from_spec(
    spec: Mapping[str, Any], module: str | tuple[str, ...], base: type, *args: Any
) -> Any:
    """``base`` subclass named by ``spec["_target_"]`` inside ``module``, called with ``args``
    and the spec's other keys.

    Specs come from configs and from checkpoints' hyperparameters; a checkpoint is data, so
    its spec may only name an optimiser (or scheduler) class of torch, with plain arguments,
    never any other callable (Hydra's ``instantiate`` would call whatever it names).
    """
    found = spec_class(spec, module, base)
    target = spec["_target_"]
    kwargs = {k: v for k, v in spec.items() if not k.startswith("_")}
    for key, value in kwargs.items():
        plain = (int, float, bool, str, type(None))
        if not isinstance(value, plain) and not (
            isinstance(value, list | tuple) and all(isinstance(v, plain) for v in value)
        ):
            raise ConfigError(f"{target} setting {key}={value!r} is not a plain value")
    return found(*args, **kwargs)
