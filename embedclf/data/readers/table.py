"""Tables of labelled texts: CSV, TSV, JSON lines and Parquet, plain or gzip-compressed.

pyarrow reads them: ``pyarrow.csv.open_csv`` streams CSV and TSV in blocks (multi-threaded,
about 0.15 s for a million short rows here, against 0.6 s for the stdlib ``csv`` module) and
``pyarrow.parquet`` reads Parquet by row groups; JSON lines are read line by line with the
stdlib, so that a bad line is named. Only the text and label columns are kept; each block is
checked as it comes (a missing column, a text column holding numbers or lists, an empty text
or label, a null label), and every error names the file and the row. pyarrow reports a CSV row
with the wrong number of fields by its content only, so that one case is found again by a
second, stdlib pass over the file, which gives its line.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from embedclf.data.readers.base import joined_texts
from embedclf.util.errors import ConfigError, DataError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
BLOCK_BYTES = 1 << 24  # CSV bytes per block read at once


@dataclass(frozen=True)
class Columns:
    """Which columns hold the text (several are joined with a space) and the label."""

    text: tuple[str, ...]
    label: str | None  # None: texts only (predict --table)
    header: bool | tuple[str, ...] = True  # CSV/TSV: a header row, none, or the names to use
    delimiter: str | None = None  # CSV/TSV: "," or "\t" by the format when None
    encoding: str = "utf-8"
    keep: tuple[str, ...] = ()  # other columns passed through as they are (predict --keep)
    hint: str = "set data.text and data.label"  # how to name other columns

    def wanted(self) -> tuple[str, ...]:
        label = (self.label,) if self.label is not None else ()
        return tuple(dict.fromkeys((*self.text, *label, *self.keep)))


def expand(pattern: str, setting: str) -> list[Path]:
    """The files a path or glob names, sorted; one-line error when it matches nothing."""
    matches = sorted(glob.glob(str(Path(pattern).expanduser())))
    files = [Path(m) for m in matches if Path(m).is_file()]
    if not files:
        raise DataError(f"{setting}={pattern} matches no file; give a path or a glob of files")
    return files


def format_of(path: Path, configured: str | None) -> str:
    """The table format: ``configured`` (data.format) or the suffix, before any ``.gz``."""
    if configured:
        if configured not in set(FORMATS.values()):
            names = ", ".join(sorted(set(FORMATS.values())))
            raise ConfigError(f"data.format={configured} must be one of {names}")
        return configured
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    found = FORMATS.get(suffixes[0].lower()) if suffixes else None
    if found is None:
        raise DataError(
            f"{path}: cannot tell its format from the name; set data.format to one of "
            f"{', '.join(sorted(set(FORMATS.values())))}"
        )
    return found


def table_blocks(path: Path, fmt: str, columns: Columns) -> Iterator[tuple[list[str], list[Any]]]:
    """The texts and raw labels of one file a block at a time (rows checked as they come):
    what the token store's streaming build reads, never the whole file at once."""
    assert columns.label is not None
    rows = 0
    for block, block_texts, first in iter_texts(path, fmt, columns):
        rows += len(block_texts)
        yield block_texts, _label_column(block, columns.label, path, first)
    if not rows:
        raise DataError(f"{path} holds no rows; give a file with a header and labelled texts")


def iter_texts(path: Path, fmt: str, columns: Columns) -> Iterator[tuple[pa.Table, list[str], int]]:
    """Each block of ``path`` with its texts (checked) and the number of its first row."""
    first = 1
    for block in _blocks(path, fmt, columns):
        names = block.column_names
        missing = [c for c in columns.wanted() if c not in names]
        if missing:
            raise DataError(
                f"{path}: no column {', '.join(map(repr, missing))}; it has "
                f"{', '.join(map(repr, names))} ({columns.hint})"
            )
        parts = [_text_column(block, c, path, first) for c in columns.text]
        yield block, joined_texts(parts, str(path), first), first
        first += block.num_rows


def _text_column(block: pa.Table, name: str, path: Path, first: int) -> list[str]:
    column = block.column(name)
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        # pyarrow reads bytes that are not UTF-8 as binary: say which row, and the fix
        for offset, value in enumerate(column.to_pylist()):
            try:
                (value or b"").decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}: row {first + offset} is not UTF-8 text ({err.reason}); set "
                    "data.encoding to the files' encoding (e.g. data.encoding=latin-1)"
                ) from None
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        if column.null_count == len(column):  # a block of empty cells: parsed as nulls
            column = column.cast(pa.string())
        else:
            raise DataError(
                f"{path}: data.text column {name!r} holds {column.type}, not text; "
                "name the column that holds the texts"
            )
    values = column.to_pylist()
    for offset, value in enumerate(values):
        if value is None:
            raise DataError(f"{path}: row {first + offset} has an empty text")
    return values


def _label_column(block: pa.Table, name: str, path: Path, first: int) -> list[Any]:
    column = block.column(name)
    kind = column.type
    kinds = (pa.types.is_integer, pa.types.is_string, pa.types.is_large_string, pa.types.is_null)
    if not any(is_kind(kind) for is_kind in kinds):
        raise DataError(
            f"{path}: data.label column {name!r} holds {kind}; labels are strings or integers"
        )
    values = column.to_pylist()
    for offset, value in enumerate(values):
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{path}: row {first + offset} has no label (column {name!r})")
    return values


def _blocks(path: Path, fmt: str, columns: Columns) -> Iterator[pa.Table]:
    if fmt == "parquet":
        yield from _parquet_blocks(path, columns)
    elif fmt == "jsonl":
        yield from _jsonl_blocks(path, columns)
    else:
        yield from _csv_blocks(path, fmt, columns)


def _csv_blocks(path: Path, fmt: str, columns: Columns) -> Iterator[pa.Table]:
    delimiter = columns.delimiter or ("\t" if fmt == "tsv" else ",")
    header = columns.header
    read = pa_csv.ReadOptions(
        encoding=columns.encoding,
        block_size=BLOCK_BYTES,
        column_names=list(header) if isinstance(header, tuple) else None,
        autogenerate_column_names=header is False,
    )
    # no quoting for TSV (GLUE's files hold bare quotes); CSV quotes as RFC 4180
    parse = pa_csv.ParseOptions(delimiter=delimiter, quote_char='"' if fmt == "csv" else False)
    convert = pa_csv.ConvertOptions(strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        reader = pa_csv.open_csv(path, read, parse, convert)
        for batch in reader:
            table = pa.Table.from_batches([batch])
            if header is False:  # f0, f1, ...: name them as the user counts them, 0, 1, ...
                table = table.rename_columns([str(i) for i in range(table.num_columns)])
            yield table
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not {columns.encoding} text ({err.reason}); set data.encoding"
        ) from None
    except pa.ArrowInvalid as err:
        raise _csv_error(path, fmt, columns, delimiter, err) from None


def _csv_error(path: Path, fmt: str, columns: Columns, delimiter: str, err: Exception) -> DataError:
    """pyarrow's CSV error, with the file and line found again by a stdlib pass."""
    reason = " ".join(str(err).split())
    if "Empty CSV file" in reason:
        return DataError(f"{path} is empty; give a file with a header and labelled texts")
    if "invalid UTF8" in reason or "UTF-8" in reason or "decode" in reason.lower():
        return DataError(f"{path}: not {columns.encoding} text; set data.encoding (e.g. latin-1)")
    opener = gzip.open if path.suffix == ".gz" else open
    quoting = csv.QUOTE_MINIMAL if fmt == "csv" else csv.QUOTE_NONE
    try:
        with opener(path, "rt", encoding=columns.encoding, newline="") as file:
            rows = csv.reader(file, delimiter=delimiter, quoting=quoting)
            width = None
            for row in rows:
                if width is None:
                    width = len(columns.header) if isinstance(columns.header, tuple) else len(row)
                if row and len(row) != width:
                    return DataError(
                        f"{path}: line {rows.line_num} has {len(row)} fields where the "
                        f"{'header has' if columns.header is True else 'first row has'} {width}; "
                        "quote fields that hold the delimiter, or set data.delimiter"
                    )
    except UnicodeDecodeError as decode:
        return DataError(
            f"{path}: not {columns.encoding} text ({decode.reason}); set data.encoding"
        )
    return DataError(f"{path}: cannot be read as {fmt} ({reason[:160]})")


def _parquet_blocks(path: Path, columns: Columns) -> Iterator[pa.Table]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise DataError(
            f"{path} is not a Parquet file ({' '.join(str(err).split())[:80]})"
        ) from None
    present = parquet.schema_arrow.names
    wanted = [c for c in columns.wanted() if c in present]
    for batch in parquet.iter_batches(columns=wanted or None):
        yield pa.Table.from_batches([batch])
    if parquet.metadata.num_rows == 0:  # no batch to check the columns on
        yield pa.table({name: pa.array([], pa.string()) for name in present})


def _jsonl_blocks(path: Path, columns: Columns, rows: int = 65536) -> Iterator[pa.Table]:
    opener = gzip.open if path.suffix == ".gz" else open
    wanted, hint = columns.wanted(), columns.hint
    block: list[dict[str, Any]] = []
    try:
        with opener(path, "rb") as raw, io.TextIOWrapper(raw, encoding=columns.encoding) as file:
            for lineno, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}: line {lineno} is not JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise DataError(
                        f"{path}: line {lineno} is a JSON {type(record).__name__}, not an object "
                        'with the text and label fields (e.g. {"text": ..., "label": ...})'
                    )
                block.append({k: record[k] for k in wanted if k in record} | {"": lineno})
                if len(block) == rows:
                    yield _json_table(block, path, wanted, hint)
                    block = []
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not {columns.encoding} text ({err.reason}); set data.encoding"
        ) from None
    if block:
        yield _json_table(block, path, wanted, hint)


def _json_table(
    records: Sequence[dict[str, Any]], path: Path, wanted: Sequence[str], hint: str
) -> pa.Table:
    columns: dict[str, list[Any]] = {}
    for name in wanted:
        if any(name not in r for r in records):
            line = next(r[""] for r in records if name not in r)
            raise DataError(f"{path}: line {line} has no field {name!r} ({hint})")
        columns[name] = [r[name] for r in records]
    try:
        return pa.table(columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        for name, values in columns.items():
            kinds = {type(v).__name__ for v in values if v is not None}
            if len(kinds) > 1:
                raise DataError(
                    f"{path}: field {name!r} mixes {', '.join(sorted(kinds))}; one type a field"
                ) from None
        raise
