"""Reading and cleaning Amazon review CSV rows: one definition for prepare (Spark) and evaluate.

A source line is `"label","title","body"` (every field quoted, `""` inside a field, a literal
backslash-n for a newline, so one review is one physical line). `parse_line` splits a line or
names why it is bad; `row_label` gives a parsed row's class (or why it has none) and `clean_rows`
turns parsed rows into (class, normalized text, drop reason).
The Spark job runs these same functions over Arrow batches, so Spark and Python agree exactly.
`count_labels` reads a whole file's label column (its layout is decided from it), and
`too_many_rejects` is the one rule for failing a job that rejects too many rows.
"""

from __future__ import annotations

import csv
import re
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path, PurePath
from typing import Any, BinaryIO

import numpy as np

from sentiment.errors import DataError, SentimentError, UsageError
from sentiment.labels import (
    LAYOUT_VALUES,
    POLICY_CLASSES,
    POLICY_TABLE,
    Layout,
    Policy,
    detect_layout,
)
from sentiment.text import DEFAULT_CLEANING, Cleaning, compose, normalize_many, switch

# Why a row is rejected (bad input) or dropped (good input the rules leave out).
REJECT_COLUMNS = "wrong_column_count"
REJECT_LABEL = "label_outside_layout"
REJECT_ENCODING = "undecodable_bytes"
REJECT_QUOTE = "unterminated_quote"
REJECT_BLANK = "blank_line"
DROP_POLICY = "dropped_by_policy"
DROP_SHORT = "too_short"
DROP_DUPLICATE = "duplicate"

# Three quoted fields; `[^"]*(?:""[^"]*)*` is the unrolled form of `(?:[^"]|"")*` (18x faster).
_FIELD = r'"([^"]*(?:""[^"]*)*)"'
_FAST = re.compile(f"{_FIELD},{_FIELD},{_FIELD}")


@dataclass(frozen=True)
class RowOptions:
    """Row-level rules beside the text cleaning: recorded in the manifest with it."""

    cleaning: Cleaning = field(default_factory=lambda: DEFAULT_CLEANING)
    include_title: bool = True
    # Training text repeats the title this many times (1 = title once, as the seed exercise did).
    title_weight: int = 3
    min_tokens: int = 1
    dedupe: bool = True

    def to_dict(self) -> dict[str, Any]:
        """The manifest's `cleaning` entry: Cleaning.to_dict() plus the row-level options."""
        return {
            **self.cleaning.to_dict(),
            "include_title": self.include_title,
            "title_weight": self.title_weight,
            "min_tokens": self.min_tokens,
            "dedupe": self.dedupe,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowOptions:
        """The options recorded in a manifest's `cleaning` entry, checked as `Cleaning`'s are: a
        hand-edited `"include_title": "false"` is off (`bool` would read it as on), a title
        weight must be a whole number from 1 to 10."""
        rest = dict(data)
        row: dict[str, Any] = {
            k: switch(k, rest.pop(k)) for k in ("include_title", "dedupe") if k in rest
        }
        for k in ("title_weight", "min_tokens"):
            if k in rest:
                row[k] = _count(k, rest.pop(k))
        return cls(cleaning=Cleaning.from_dict(rest), **row)


def _count(name: str, value: Any) -> int:
    """A recorded whole number of at least 1 (`title_weight`, `min_tokens`); "3" is read as 3."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        number = None
    else:
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None or number < 1 or (name == "title_weight" and number > 10):
        top = " to 10" if name == "title_weight" else " or more"
        raise UsageError(
            f"Row option {name!r} is {value!r}; it must be a whole number from 1{top}."
        )
    return number


def parse_line(line: str) -> tuple[list[str] | None, str | None]:
    """The fields of one CSV line, or (None, reject reason)."""
    line = line.rstrip("\r\n")
    match = _FAST.fullmatch(line)
    if match:
        if '""' in line:
            return [g.replace('""', '"') for g in match.groups()], None
        return list(match.groups()), None
    if not line.strip():
        return None, REJECT_BLANK
    if "\ufffd" in line:
        return None, REJECT_ENCODING
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error:
        return None, REJECT_QUOTE
    if not rows or len(rows[0]) != 3:
        return None, REJECT_COLUMNS
    return rows[0], None


def row_label(
    layout: Layout, raw_label: str, title: str, body: str, policy: Policy
) -> tuple[str | None, str | None]:
    """(class, None) for a parsed row the policy keeps, else (None, a REJECT_* or DROP_* name)."""
    if raw_label not in LAYOUT_VALUES[layout]:
        return None, REJECT_LABEL
    if "\ufffd" in title or "\ufffd" in body:
        return None, REJECT_ENCODING
    label = POLICY_TABLE[policy][layout][raw_label]
    return (label, None) if label is not None else (None, DROP_POLICY)


def clean_rows(
    rows: list[tuple[Layout, str, str, str]], policy: Policy, options: RowOptions
) -> list[tuple[str | None, str, str | None]]:
    """(class, normalized text, reason) for (layout, raw label, title, body) rows, normalized in
    one batch: reason is a REJECT_* or DROP_* name when the row is not written."""
    results: list[tuple[str | None, str, str | None]] = []
    pending: list[int] = []
    texts: list[str] = []
    for layout, raw_label, title, body in rows:
        label, reason = row_label(layout, raw_label, title, body, policy)
        if reason is not None:
            results.append((None, "", reason))
        else:
            pending.append(len(results))
            results.append((label, "", None))
            texts.append(compose(title, body, options.include_title, options.title_weight))
    for i, text in zip(pending, normalize_many(texts, options.cleaning), strict=True):
        label = results[i][0]
        short = not text or (options.min_tokens > 1 and text.count(" ") + 1 < options.min_tokens)
        results[i] = (label, text, DROP_SHORT if short else None)
    return results


# Split codes as the prepare job and sentiment.text_kernel use them; when a text occurs in
# several splits it is kept in the one with the smallest code (test stays test).
SPLIT_CODES = {"test": 0, "validation": 1, "train": 2}
LAYOUT_CODES = {Layout.FULL: 0, Layout.POLARITY: 1}


def row_code(split: str, class_index: int) -> int:
    """A kept row's split and class in one int (what the prepare job dedupes on)."""
    return SPLIT_CODES[split] << 16 | class_index


@dataclass(frozen=True)
class CleanedLines:
    """What `clean_lines` makes of a batch of raw lines (see sentiment.text_kernel)."""

    status: np.ndarray  # per line: KEPT, FALLBACK, REJECT_LABEL, DROP_POLICY, DROP_SHORT
    code: np.ndarray  # per line: row_code() of a KEPT line
    texts: np.ndarray  # UTF-8 of the KEPT lines' texts, in order
    text_offsets: np.ndarray  # len(KEPT) + 1 offsets into texts


def clean_lines(
    data: np.ndarray,
    offsets: np.ndarray,
    layouts: np.ndarray,
    splits: np.ndarray,
    policy: Policy,
    options: RowOptions,
    seed: int,
    validation_fraction: float,
) -> CleanedLines:
    """Raw CSV lines (UTF-8 bytes data[offsets[i]:offsets[i+1]], with LAYOUT_CODES and
    SPLIT_CODES per line) cleaned by the compiled kernel: parse, policy, compose, normalize,
    split, all as parse_line / clean_rows / split_of do. Lines marked FALLBACK are left to those
    Python functions (not three plain quoted fields, not strict UTF-8, an HTML entity...)."""
    from sentiment.text import kernel_options
    from sentiment.text_kernel import clean_csv_lines, crc_table, tables

    status, code, texts, text_offsets = clean_csv_lines(
        data,
        offsets,
        layouts,
        splits,
        _policy_array(policy),
        *tables(),
        kernel_options(options.cleaning, options.include_title),
        options.title_weight,
        options.min_tokens,
        np.frombuffer(f"{seed}\x00".encode(), dtype=np.uint8),
        validation_fraction,
        crc_table(),
    )
    return CleanedLines(status, code, texts, text_offsets)


def _policy_array(policy: Policy) -> np.ndarray:
    """[layout code, stars] -> class index, -1 dropped by the policy, -2 outside the layout."""
    classes = {name: i for i, name in enumerate(POLICY_CLASSES[policy])}
    table = np.full((len(LAYOUT_CODES), 6), -2, dtype=np.int32)
    for layout, row in LAYOUT_CODES.items():
        for raw, name in POLICY_TABLE[policy][layout].items():
            table[row, int(raw)] = -1 if name is None else classes[name]
    return table


def is_rejection(reason: str | None) -> bool:
    return reason is not None and not reason.startswith(("dropped", "too_", "dup"))


def split_of(source_split: str, text: str, seed: int, validation_fraction: float) -> str:
    """train, validation or test: validation is carved from train by a seeded hash of the text,
    so a text lands in the same split on every run and duplicates never straddle splits."""
    if source_split != "train" or validation_fraction <= 0:
        return source_split
    bucket = zlib.crc32(f"{seed}\x00{text}".encode()) / 0xFFFFFFFF
    return "validation" if bucket < validation_fraction else "train"


def source_split_of(path: PurePath) -> str:
    """The split a source file holds, from its name (test.csv -> test; anything else -> train)."""
    stem = path.stem.lower()
    if stem.startswith("test"):
        return "test"
    if stem.startswith(("valid", "dev")):
        return "validation"
    return "train"


def read_lines(path: Path) -> Iterator[str]:
    """Physical lines of a CSV as text; undecodable bytes become U+FFFD (then rejected)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        yield from fh


def clean_file(
    path: Path,
    layout: Layout,
    policy: Policy,
    options: RowOptions = RowOptions(),
    batch: int = 2000,
) -> Iterator[tuple[str, str | None, str, str | None]]:
    """(raw line, class, text, reason) for every line of a reviews CSV, in plain Python."""
    lines = read_lines(path)
    while chunk := list(islice(lines, batch)):
        parsed = [parse_line(line) for line in chunk]
        good = [(layout, f[0], f[1], f[2]) for f, _ in parsed if f is not None]
        cleaned = iter(clean_rows(good, policy, options))
        for line, (fields, reason) in zip(chunk, parsed, strict=True):
            if fields is None:
                yield line, None, "", reason
            else:
                yield line, *next(cleaned)


# Files are scanned for their labels in blocks of this size (cut after a newline).
_LABEL_BLOCK = 1 << 24
_QUOTE, _COMMA, _NEWLINE = ord('"'), ord(","), ord("\n")


def count_labels(path: Path | BinaryIO) -> Counter[str]:
    """How many lines of a reviews CSV carry each raw label: what precedes the first comma of
    every line, quotes and spaces stripped (blank lines and lines without a comma are left out).

    The whole file is read, so its layout is decided by every row (a file sorted by stars
    starts with 1s and 2s, which alone look like the polarity layout). Lines are found in
    blocks of bytes with numpy, and the usual `"5",` / `5,` starts are read from there; the
    rare other lines are split in Python. Measured on the shared sample x100 (2.4M rows,
    1.3 GB): 1.7M rows/s, 3.0x csv.reader's first column, ~5% of prepare's time on that input
    (`python -m benchmarks.prepare --scan-only --rows 2424800`).
    """
    if isinstance(path, Path):
        with open(path, "rb") as fh:
            return count_labels(fh)
    counts: Counter[str] = Counter()
    carry = b""
    while block := path.read(_LABEL_BLOCK):  # a file, or a stream of an S3 object
        data = carry + block
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        _count_block(data[:cut], counts)
    if carry:
        _count_block(carry + b"\n", counts)
    return counts


def detect_file_layout(
    path: Path | str, stream: BinaryIO | None = None
) -> tuple[Layout, dict[str, int]]:
    """The layout of a reviews CSV, decided from every line's label, and the label counts
    (read from `stream` when given: a remote file named `path`)."""
    labels = dict(count_labels(stream if stream is not None else Path(path)))
    try:
        return detect_layout(labels), labels
    except SentimentError as err:
        raise DataError(f"{path}: {err.message}", hint=err.hint) from None


def _count_block(data: bytes, counts: Counter[str]) -> None:
    """Add the labels of `data` (whole lines, each ending with a newline) to `counts`."""
    buf = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(buf == _NEWLINE)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    length = ends - starts
    padded = np.concatenate([buf, np.zeros(4, np.uint8)])  # reads past a short line stay inside
    first, second, third, fourth = (padded[starts + i] for i in range(4))
    quoted = (length >= 4) & (first == _QUOTE) & (third == _QUOTE) & (fourth == _COMMA)
    bare = (length >= 2) & (second == _COMMA) & (first != _QUOTE)
    for found, byte in ((quoted, second), (bare, first)):
        values, n = np.unique(byte[found], return_counts=True)
        counts.update({chr(v): int(c) for v, c in zip(values.tolist(), n.tolist(), strict=True)})
    for i in np.flatnonzero(~(quoted | bare)).tolist():
        line = data[starts[i] : ends[i]]
        if b"," in line:
            counts[line.split(b",", 1)[0].strip().strip(b'"').decode("utf-8", "replace")] += 1


def too_many_rejects(
    read: int, rejected: Mapping[str, int], max_ratio: float, *, what: str, hint: str
) -> DataError | None:
    """The error that fails a job whose rows were rejected for one reason above `max_ratio`
    of the rows read (the `max_reject_ratio` setting), or None. Blank lines are left out: they
    hold no review to lose. `what` names the input, `hint` says where the rejected rows are."""
    over = {
        reason: n
        for reason, n in sorted(rejected.items())
        if reason != REJECT_BLANK and n > max_ratio * read
    }
    if not over:
        return None
    counts = "; ".join(f"{n:,} of {read:,} rows ({n / read:.1%}) as {r}" for r, n in over.items())
    fix = (
        "The labels do not fit the layout: pass --layout full (stars 1-5) or --layout polarity "
        "(1 = negative, 2 = positive) to match the file. "
        if REJECT_LABEL in over
        else 'Check that the file is an Amazon reviews CSV (UTF-8, one `"label","title",'
        '"text"` row a line). '
    )
    return DataError(
        f"{what}: rejected {counts}, above the {max_ratio:.2%} allowed (max_reject_ratio).",
        hint=f"{fix}{hint} To accept them, raise --max-reject-ratio "
        "(or SENTIMENT_MAX_REJECT_RATIO).",
        rejected=dict(rejected),
        rows_read=read,
    )
