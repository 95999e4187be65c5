"""Reading and cleaning Amazon review CSV rows: one definition for prepare (Spark) and evaluate.

A source line is `"label","title","body"` (every field quoted, `""` inside a field, a literal
backslash-n for a newline, so one review is one physical line). `parse_line` splits a line or
names why it is bad; `clean_row` turns a parsed row into (class, normalized text, drop reason).
The Spark job runs these same functions over Arrow batches, so Spark and Python agree exactly.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentiment.labels import LAYOUT_VALUES, POLICY_TABLE, Layout, Policy
from sentiment.text import DEFAULT_CLEANING, Cleaning, compose, normalize

# Why a row is rejected (bad input) or dropped (good input the rules leave out).
REJECT_COLUMNS = "wrong_column_count"
REJECT_LABEL = "label_outside_layout"
REJECT_ENCODING = "undecodable_bytes"
REJECT_QUOTE = "unterminated_quote"
REJECT_BLANK = "blank_line"
DROP_POLICY = "dropped_by_policy"
DROP_SHORT = "too_short"
DROP_DUPLICATE = "duplicate"

_FAST = __import__("re").compile(r'"((?:[^"]|"")*)","((?:[^"]|"")*)","((?:[^"]|"")*)"')


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
        rest = dict(data)
        row = {
            k: rest.pop(k)
            for k in ("include_title", "title_weight", "min_tokens", "dedupe")
            if k in rest
        }
        return cls(cleaning=Cleaning.from_dict(rest), **row)


def parse_line(line: str) -> tuple[list[str] | None, str | None]:
    """The fields of one CSV line, or (None, reject reason)."""
    line = line.rstrip("\r\n")
    match = _FAST.fullmatch(line)
    if match:
        return [g.replace('""', '"') for g in match.groups()], None
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


def clean_row(
    layout: Layout,
    raw_label: str,
    title: str,
    body: str,
    policy: Policy,
    options: RowOptions,
) -> tuple[str | None, str, str | None]:
    """(class, text, reason): reason is a REJECT_* or DROP_* name when the row is not written."""
    if raw_label not in LAYOUT_VALUES[layout]:
        return None, "", REJECT_LABEL
    if "\ufffd" in title or "\ufffd" in body:
        return None, "", REJECT_ENCODING
    label = POLICY_TABLE[policy][layout][raw_label]
    if label is None:
        return None, "", DROP_POLICY
    text = normalize(
        compose(title, body, options.include_title, options.title_weight), options.cleaning
    )
    if text.count(" ") + 1 < options.min_tokens or not text:
        return label, text, DROP_SHORT
    return label, text, None


def is_rejection(reason: str | None) -> bool:
    return reason is not None and not reason.startswith(("dropped", "too_", "dup"))


def split_of(source_split: str, text: str, seed: int, validation_fraction: float) -> str:
    """train, validation or test: validation is carved from train by a seeded hash of the text,
    so a text lands in the same split on every run and duplicates never straddle splits."""
    if source_split != "train" or validation_fraction <= 0:
        return source_split
    bucket = zlib.crc32(f"{seed}\x00{text}".encode()) / 0xFFFFFFFF
    return "validation" if bucket < validation_fraction else "train"


def source_split_of(path: Path) -> str:
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
    path: Path, layout: Layout, policy: Policy, options: RowOptions = RowOptions()
) -> Iterator[tuple[str, str | None, str, str | None]]:
    """(raw line, class, text, reason) for every line of a reviews CSV, in plain Python."""
    for line in read_lines(path):
        fields, reason = parse_line(line)
        if fields is None:
            yield line, None, "", reason
            continue
        label, text, reason = clean_row(layout, fields[0], fields[1], fields[2], policy, options)
        yield line, label, text, reason
