"""Plots users compare runs with: a sweep's metric against the swept value, a run's curves.

matplotlib is imported inside the functions, with the Agg backend (files only, no display),
so that importing this module costs ``train.py`` nothing. Each PNG is written under a
temporary sibling name and renamed into place, so a reader never opens a half-written one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedclf.util.fileio import atomic_write

# ratio of the largest to the smallest swept value from which the x axis is logarithmic
LOG_SPAN = 10.0


@dataclass(frozen=True)
class Point:
    """One mark of the summary plot: a setting's mean metric over seeds, with its spread."""

    x: str  # the swept value as written in the override (``100``, ``1e-3``, ``glove_6b_50d``)
    series: str  # label of the line it belongs to ("" when there is one line)
    mean: float
    std: float | None = None  # None when fewer than two seeds
    n: int = 1


def _figure(ncols: int) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot's first import in the process
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(6.0 * ncols, 4.5), squeeze=False)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        fig.tight_layout()
        with atomic_write(path, "wb") as file:
            fig.savefig(file, format="png", dpi=100)
    finally:
        plt.close(fig)


def _as_number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def x_scale(values: Sequence[str]) -> str:
    """``log``, ``linear`` or ``categorical``: how the swept values are best laid out."""
    numbers = [_as_number(v) for v in values]
    if not numbers or any(n is None for n in numbers):
        return "categorical"
    low, high = min(numbers), max(numbers)  # type: ignore[type-var]
    if low > 0 and high / low >= LOG_SPAN:
        return "log"
    return "linear"


def plot_summary(
    points: Sequence[Point],
    path: Path,
    *,
    x_label: str,
    y_label: str,
    title: str = "",
) -> None:
    """The metric against the swept value: one line per series, error bars = std over seeds.

    Numeric x values are placed by value (on a log axis when they span ``LOG_SPAN`` times or
    more); any other x values are categories, in the order of their first appearance.
    """
    fig, axes = _figure(1)
    ax = axes[0][0]
    xs = list(dict.fromkeys(p.x for p in points))
    scale = x_scale(xs)
    position = {x: (i if scale == "categorical" else float(x)) for i, x in enumerate(xs)}
    for series in dict.fromkeys(p.series for p in points):
        mine = sorted((p for p in points if p.series == series), key=lambda p: position[p.x])
        ax.errorbar(
            [position[p.x] for p in mine],
            [p.mean for p in mine],
            yerr=[p.std if p.std is not None else 0.0 for p in mine],
            marker="o",
            capsize=4,
            label=series or None,
        )
    if scale == "categorical":
        ax.set_xticks(range(len(xs)), xs, rotation=30 if len(xs) > 4 else 0)
    elif scale == "log":
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if title:
        ax.set_title(title)
    if any(p.series for p in points):
        ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    _save(fig, path)


def plot_curves(history: Mapping[str, Sequence[float]], path: Path) -> None:
    """Loss and accuracy per epoch, training and validation, as one PNG of two panels.

    The seed book's four plots (listing 6.x): ``history`` holds ``train/loss``, ``train/acc``
    and, when the run validated, ``val/loss`` and ``val/acc`` (missing or empty otherwise).
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = _figure(2)
    epochs = max((len(values or []) for values in history.values()), default=0)
    for ax, name in zip(axes[0], ("loss", "acc"), strict=True):
        # the book's styles: training as dots, validation as a line (a cross for one epoch)
        for split, label in (("train", "training"), ("val", "validation")):
            values = list(history.get(f"{split}/{name}") or [])
            style = "bo" if split == "train" else ("bx" if len(values) == 1 else "b")
            if values:
                ax.plot(range(1, len(values) + 1), values, style, label=label)
        if 0 < epochs <= 20:
            ax.set_xticks(range(1, epochs + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if name == "acc" else "loss")
        ax.set_title(f"Training and validation {'accuracy' if name == 'acc' else 'loss'}")
        if ax.lines:
            ax.legend()
        ax.grid(True, alpha=0.3)
    _save(fig, path)
