"""Tables and a plot comparing the runs of a sweep (``python -m embedclf.summarize DIR``).

Finds the run directories under ``DIR`` (each holds ``metrics.json``, or ``error.txt`` for a
job that failed, beside Hydra's ``.hydra/overrides.yaml``) and writes into ``DIR``:

- ``summary.csv`` and the first table of ``summary.md``: one row per run, with one column per
  override that differs across the runs (settings shared by every run are left out);
- ``summary_groups.csv`` and the second table of ``summary.md``: mean and sample standard
  deviation over seeds (the ``seed`` override) for each combination of the other settings;
- ``summary.png``: the metric against the first swept setting other than the seed, one line
  per combination of the remaining ones, error bars = standard deviation over seeds.

The sweep callback (``embedclf.runs.sweeps``) runs this at the end of every multirun.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedclf.runs.plots import Point, plot_summary
from embedclf.util.errors import ERROR_FILE, UserError
from embedclf.util.fileio import atomic_write_text

METRICS_FILE = "metrics.json"
OVERRIDES_FILE = Path(".hydra") / "overrides.yaml"
SEED_KEY = "seed"
# columns of the per-run table after the differing overrides; the chosen metric is added
RUN_METRICS = ("val_acc", "test_acc", "epochs", "fit_seconds")
# metrics averaged over seeds; the chosen metric is added
GROUP_METRICS = ("val_acc", "test_acc")
OUTPUTS = ("summary.csv", "summary_groups.csv", "summary.md", "summary.png")


class SummaryError(UserError):
    """A directory that cannot be summarised (missing, or holding no run directories)."""


@dataclass
class Run:
    """One job of the sweep as found on disk."""

    path: Path
    name: str  # path relative to the summarised directory, e.g. ``seed=0`` or ``a/3``
    overrides: dict[str, str]
    metrics: dict[str, Any] | None
    error: str | None  # one line; None for a run that finished

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return "ok" if self.error is None else f"failed: {self.error}"


@dataclass
class Summary:
    """What :func:`summarize` found and wrote."""

    directory: Path
    metric: str
    keys: list[str]  # overrides that differ across the runs, in command-line order
    runs: list[Run]
    groups: list[dict[str, Any]]  # one per combination of the non-seed keys
    markdown: str
    files: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[Run]:
        return [run for run in self.runs if not run.ok]


def parse_override(text: str) -> tuple[str, str]:
    """``key=value`` of one job override; ``+``/``++``/``~`` prefixes dropped from the key."""
    key, _, value = text.partition("=")
    return key.strip().lstrip("+~"), value.strip()


def is_run_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in (METRICS_FILE, ERROR_FILE, str(OVERRIDES_FILE)))


def find_run_dirs(directory: Path) -> Iterator[Path]:
    """Run directories below ``directory``, at any depth (a run's own folders not searched)."""
    for child in sorted(directory.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if is_run_dir(child):
            yield child
        else:
            yield from find_run_dirs(child)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def read_run(path: Path, root: Path) -> Run:
    import yaml  # PyYAML comes with Hydra (OmegaConf)

    overrides: dict[str, str] = {}
    overrides_file = path / OVERRIDES_FILE
    if overrides_file.is_file():
        for item in yaml.safe_load(overrides_file.read_text()) or []:
            key, value = parse_override(str(item))
            overrides[key] = value
    metrics: dict[str, Any] | None = None
    error: str | None = None
    if (path / ERROR_FILE).is_file():
        error = _first_line((path / ERROR_FILE).read_text(errors="replace")) or "error.txt"
    elif (path / METRICS_FILE).is_file():
        try:
            metrics = json.loads((path / METRICS_FILE).read_text())
        except (OSError, ValueError) as err:
            error = f"unreadable {METRICS_FILE}: {err}"
        if not isinstance(metrics, dict) and error is None:
            error, metrics = (
                f"{METRICS_FILE} is a JSON {type(metrics).__name__}, not an object",
                None,
            )
    else:
        error = f"no {METRICS_FILE} (killed, or still running)"
    if metrics is not None and error is None:
        wrong = next((k for k in RUN_METRICS if not _plain_number(metrics.get(k))), None)
        if wrong is not None:
            error = f"{METRICS_FILE}: {wrong} is {metrics[wrong]!r}, not a number"
    return Run(path, path.relative_to(root).as_posix(), overrides, metrics, error)


def _plain_number(value: Any) -> bool:
    """None (not measured) or a number, never a string or a bool dressed as one."""
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))


def differing_keys(runs: Sequence[Run]) -> list[str]:
    """Override keys whose value is not the same in every run, in order of first appearance."""
    ordered = dict.fromkeys(key for run in runs for key in run.overrides)
    return [key for key in ordered if len({run.overrides.get(key) for run in runs}) > 1]


def _value_order(value: str | None) -> tuple[int, float, str]:
    """Sort numbers by value (``2`` before ``10``), then text, then missing values."""
    if value is None:
        return (2, 0.0, "")
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _mean_std(values: Iterable[Any]) -> tuple[float | None, float | None]:
    numbers = [v for v in map(_number, values) if v is not None]
    mean = statistics.fmean(numbers) if numbers else None
    std = statistics.stdev(numbers) if len(numbers) > 1 else None
    return mean, std


def group_runs(
    runs: Sequence[Run], keys: Sequence[str], metrics: Sequence[str]
) -> list[dict[str, Any]]:
    """Mean and sample std over seeds of ``metrics`` per combination of ``keys``."""
    groups: dict[tuple[str | None, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.overrides.get(k) for k in keys), []).append(run)
    rows = []
    for values in sorted(groups, key=lambda vs: [_value_order(v) for v in vs]):
        members = groups[values]
        done = [run for run in members if run.ok and run.metrics is not None]
        row: dict[str, Any] = dict(zip(keys, values, strict=True))
        row["n"] = len(done)
        row["failed"] = len(members) - len(done)
        for metric in metrics:
            mean, std = _mean_std(run.metrics.get(metric) for run in done if run.metrics)
            row[f"{metric}_mean"] = mean
            row[f"{metric}_std"] = std
        rows.append(row)
    return rows


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if "seconds" in column else f"{value:.4f}"
    return str(value).replace("|", "\\|")


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [_cell(value, column) for value, column in zip(row, header, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue()


def _plot(summary: Summary, path: Path) -> bool:
    """summary.png; False (and no file) when nothing varies or no run has the metric."""

    metric = summary.metric
    others = [k for k in summary.keys if k != SEED_KEY]
    if others:
        x_key, series_keys = others[0], others[1:]
        points = [
            Point(
                x=group[x_key] or "",
                series=", ".join(f"{k}={group[k]}" for k in series_keys),
                mean=group[f"{metric}_mean"],
                std=group[f"{metric}_std"],
                n=group["n"],
            )
            for group in summary.groups
            if group[f"{metric}_mean"] is not None
        ]
    elif summary.keys:  # only the seed varies: one mark per run
        x_key = SEED_KEY
        points = [
            Point(x=run.overrides.get(SEED_KEY) or "", series="", mean=value)
            for run in summary.runs
            if run.metrics and (value := _number(run.metrics.get(metric))) is not None
        ]
    else:
        points = []
    if not points:
        path.unlink(missing_ok=True)  # not a stale plot of an earlier summary
        return False
    seeds = " (mean ± std over seeds)" if SEED_KEY in summary.keys and others else ""
    plot_summary(points, path, x_label=x_key, y_label=metric + seeds, title=summary.directory.name)
    return True


def _runs_of(directory: Path, metric: str) -> list[Run]:
    """The runs under a sweep ``directory``; SummaryError when there are none, or none has
    ``metric``."""
    if not directory.is_dir():
        raise SummaryError(f"{directory} is not a directory")
    if is_run_dir(directory):
        raise SummaryError(f"{directory} is one run; pass the sweep directory that holds runs")
    runs = [read_run(path, directory) for path in find_run_dirs(directory)]
    if not runs:
        raise SummaryError(
            f"no run directories (with {METRICS_FILE} or {ERROR_FILE}) under {directory}"
        )
    finished = [run.metrics for run in runs if run.metrics is not None]
    if finished and not any(metric in m for m in finished):
        have = ", ".join(sorted({k for m in finished for k in m}))
        raise SummaryError(f"--metric {metric} is not in {METRICS_FILE} (it has: {have})")
    return runs


def summarize(directory: Path, metric: str = "test_acc") -> Summary:
    """Find the runs under ``directory`` and write the summary files into it (see module doc)."""
    directory = Path(directory)
    runs = _runs_of(directory, metric)
    keys = differing_keys(runs)
    runs.sort(key=lambda r: ([_value_order(r.overrides.get(k)) for k in keys], r.name))
    run_metrics = list(dict.fromkeys([*RUN_METRICS, metric]))
    group_metrics = list(dict.fromkeys([*GROUP_METRICS, metric]))
    group_keys = [k for k in keys if k != SEED_KEY]
    groups = group_runs(runs, group_keys, group_metrics)

    run_header = ["run", *keys, *run_metrics, "status"]
    run_rows = [
        [
            run.name,
            *(run.overrides.get(k) for k in keys),
            *((run.metrics or {}).get(m) for m in run_metrics),
            run.status,
        ]
        for run in runs
    ]
    group_header = [*group_keys, "n", "failed"]
    for m in group_metrics:
        group_header += [f"{m}_mean", f"{m}_std"]
    group_rows = [[group[c] for c in group_header] for group in groups]

    failed = sum(not run.ok for run in runs)
    varying = ", ".join(keys) if keys else "nothing (the runs share every override)"
    markdown = "\n\n".join(
        [
            f"# Summary of {directory}",
            f"{len(runs)} runs, {failed} failed. Varying: {varying}.",
            _markdown_table(run_header, run_rows),
            "## Mean and standard deviation over seeds",
            "n: runs that finished; std: sample standard deviation (n - 1), empty when n < 2.",
            _markdown_table(group_header, group_rows),
        ]
    )
    summary = Summary(directory, metric, keys, runs, groups, markdown + "\n")
    outputs = {
        "summary.csv": _csv(run_header, run_rows),
        "summary_groups.csv": _csv(group_header, group_rows),
        "summary.md": summary.markdown,
    }
    for name, text in outputs.items():
        atomic_write_text(directory / name, text)
        summary.files.append(directory / name)
    if _plot(summary, directory / "summary.png"):
        summary.files.append(directory / "summary.png")
    return summary
