"""What every reader gives the token store: texts and integer labels per split, class names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedclf.util.errors import ConfigError, DataError


@dataclass
class LabelledTexts:
    """Texts and integer labels per split; ``classes[label]`` is the label's folder name."""

    classes: list[str]
    texts: dict[str, list[str]]
    labels: dict[str, np.ndarray]


def labelled(
    texts: dict[str, list[str]],
    raw: dict[str, list[Any]],
    where: dict[str, str],
    *,
    names: Sequence[str] | None = None,
    offset: int = 0,
) -> LabelledTexts:
    """Texts with raw labels (strings, or integers less ``offset``) per split as
    :class:`LabelledTexts`. Class names are ``names`` (for integer labels, in order), else the
    training labels sorted; ``where[split]`` names the split's files in errors."""
    kinds = {split: {type(v) for v in values} for split, values in raw.items()}
    if any(k - {int} for k in kinds.values()) and any(k - {str} for k in kinds.values()):
        raise DataError(f"{where['train']}: labels mix strings and integers; use one kind")
    integers = all(k <= {int} for k in kinds.values())
    if integers:
        raw = {split: [v - offset for v in values] for split, values in raw.items()}
    if names is not None:
        if not integers:
            raise ConfigError("data.label_names names integer labels, but the labels are strings")
        classes = [str(n) for n in names]
        index = {i: i for i in range(len(classes))}
    else:
        found = sorted(set(raw["train"]))
        classes = [str(v) for v in found]
        index = {v: i for i, v in enumerate(found)}
    if len(set(raw["train"])) < 2:
        raise DataError(
            f"{where['train']}: the training rows hold one class ({classes[0] if classes else '-'})"
            "; a classifier needs two or more"
        )
    labels = {}
    for split, values in raw.items():
        unknown = next((v for v in values if v not in index), None)
        if unknown is not None:
            if names is not None:
                problem = (
                    f"label {unknown + offset} is outside data.label_names ({len(names)} names"
                )
                problem += f", data.label_offset={offset})"
            else:
                problem = f"label {unknown!r} does not occur in the training rows"
            raise DataError(f"{where[split]}: {problem}")
        labels[split] = np.fromiter((index[v] for v in values), np.int64, len(values))
    return LabelledTexts(classes, texts, labels)


def joined_texts(parts: Sequence[Sequence[str]], where: str, first: int = 1) -> list[str]:
    """Each row's text columns joined with a space (title + body); a row whose text is empty
    is an error naming ``where`` and the row (``first`` is the number of the first row)."""
    texts = list(parts[0]) if len(parts) == 1 else [" ".join(p) for p in zip(*parts, strict=True)]
    empty = next((i for i, text in enumerate(texts) if not text.strip()), None)
    if empty is not None:
        raise DataError(f"{where}: row {first + empty} has an empty text")
    return texts
