"""The encoders a ``net`` spec can name (``net.encoder.kind``), one module each.

A new encoder is a module here under the :class:`~embedclf.models.encoders.base.Encoder`
protocol, one entry in :data:`ENCODERS`, and a ``conf/model/`` file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embedclf.models.encoders.bag import Bag, WeightedMean
from embedclf.models.encoders.base import PAD_ID, Encoder
from embedclf.models.encoders.cnn import CNN
from embedclf.models.encoders.flatten import Flatten
from embedclf.models.encoders.mean import Mean
from embedclf.models.encoders.rnn import RNN
from embedclf.models.encoders.transformer import Transformer

ENCODERS: dict[str, type[Encoder]] = {
    cls.kind: cls for cls in (Flatten, Mean, Bag, WeightedMean, CNN, RNN, Transformer)
}

__all__ = ["ENCODERS", "PAD_ID", "Encoder", "encoder_class"]


def encoder_class(spec: Mapping[str, Any]) -> type[Encoder]:
    """The class ``spec["kind"]`` names; ValueError naming the kinds otherwise."""
    kind = spec.get("kind") if isinstance(spec, Mapping) else None
    if kind not in ENCODERS:
        raise ValueError(f"encoder kind {kind!r} is not one of {', '.join(ENCODERS)}")
    return ENCODERS[kind]
