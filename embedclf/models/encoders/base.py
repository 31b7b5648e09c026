"""The encoder protocol: what every encoder under the classifier's head provides.

An encoder turns a batch of feature ids into one vector per row, ``(n, out_dim)``. Its
:attr:`Encoder.layout` says what it takes: ``"fixed"``, ids padded to ``seq_len`` (flatten's one
weight per position); ``"longest"``, ids padded to the batch's longest row (order-aware
encoders); ``"bag"``, the ids flat with offsets, not padded at all (:meth:`Encoder.forward_bag`,
``nn.EmbeddingBag``'s own input). Every encoder also takes padded ids (:meth:`Encoder.forward`:
checkpoints exported or scored on padded rows). Both are handed the classifier's embedding
(``nn.Embedding``, or ``nn.EmbeddingBag`` where :attr:`Encoder.bag` says so); ``forward`` gets
the ids and their mask (``ids != PAD_ID``). Every encoder is built from plain settings (its
part of the ``net`` spec) as ``cls(dim=..., seq_len=..., rows=..., **settings)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from embedclf.data.batches import PAD_ID  # noqa: F401  (re-exported: encoders' padding id)

LAYOUTS = ("fixed", "longest", "bag")


def whole(value: Any) -> bool:
    """An ``int`` and not a ``bool`` (which would pass as 0 or 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


class Encoder(nn.Module):
    """One vector per row of ids. Subclasses set :attr:`out_dim` and :meth:`forward`."""

    kind: ClassVar[str]
    bag: ClassVar[bool] = False  # True: the embedding is an nn.EmbeddingBag (sum mode)
    layout: ClassVar[str] = "longest"  # one of LAYOUTS
    # the settings that take one of a few names, and those names (checked before a run)
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    # the whole-number settings (or lists of them) and their least and greatest values
    counts: ClassVar[dict[str, tuple[int, int | None]]] = {}
    # the settings that are true or false
    flags: ClassVar[tuple[str, ...]] = ()
    out_dim: int

    def __init__(self, *, dim: int, seq_len: int, rows: int) -> None:
        super().__init__()
        self.dim, self.seq_len, self.rows = dim, seq_len, rows

    @classmethod
    def default(cls, name: str) -> Any:
        """The constructor's default for the setting ``name``."""
        return inspect.signature(cls).parameters[name].default

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], prefix: str = "") -> None:
        """:class:`ValueError` naming the first of ``settings`` (those not given at the
        constructor's defaults) that is not one of its :attr:`choices`, not within its
        :attr:`counts`, or not a boolean among its :attr:`flags`. The constructor calls it on
        what it is built from (a checkpoint's spec included), and the run's checks before
        any data is read, ``prefix`` naming where the settings are."""
        for name, names in cls.choices.items():
            value = settings.get(name, cls.default(name))
            if value not in names:
                raise ValueError(f"{prefix}{name}={value!r} must be one of {', '.join(names)}")
        for name, (least, most) in cls.counts.items():
            value = settings.get(name, cls.default(name))
            many = isinstance(value, Sequence) and not isinstance(value, str)
            values = list(value) if many else [value]
            if not values or not all(
                whole(v) and least <= v and (most is None or v <= most) for v in values
            ):
                bounds = f">= {least}" if most is None else f"from {least} to {most}"
                raise ValueError(
                    f"{prefix}{name}={values if many else value!r} must be "
                    f"{'whole numbers' if many else 'a whole number'} {bounds}"
                )
        for name in cls.flags:
            value = settings.get(name, cls.default(name))
            if not isinstance(value, bool):
                raise ValueError(f"{prefix}{name}={value!r} must be true or false")

    def forward(self, embedding: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_bag(
        self, embedding: nn.Module, flat: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        """Rows as flat ids and ``n + 1`` offsets (``layout = "bag"`` encoders only)."""
        raise NotImplementedError
