"""`sentiment.text.normalize` and the prepare job's row cleaning, compiled (`sentiment/_text.c`).

Why hand-written and not a regex library: Python's `re` spends ~30 us on a typical review
(600 characters, ~100 tokens), which made normalization the cost of both the prepare job and a
served request. The fast regex engines (RE2 through pyarrow, Rust's through polars) have no
look-around and their own idea of `\\w`, so using them would mean a second definition that only
nearly agrees. The compiled code is one linear pass per rule over the text's code points, with
`\\w`, `\\d`, `\\s` and lower case taken from Python itself (the tables below, built from
Python's regex engine and `str.lower`), so the character classes are Python's exactly.
tests/text_reference.py keeps the rules as the regular expressions they are specified as, and
the tests check this code against them on every shared review and on generated edge cases.
Why C rather than numba (which it was): numba's runtime cost ~100 MB resident in every process
that loaded it (each server worker, each Spark Python worker) and a JIT compile on every fresh
checkout; see the top of `_text.c`.

Entries (numpy in, numpy out):
- `normalize_utf8`: texts as UTF-8 bytes + offsets (what `sentiment.text.normalize_many` uses);
- `normalize_one`: one text (a served request);
- `clean_csv_lines`: lines of an Amazon reviews CSV (what the Spark job's Arrow batches hold):
  parse, label policy, compose title + body, normalize, drop reason, validation split;
- `normalizer`: the C entry the engine's Predictor calls (no Python in between).
A text the compiled code does not take on (an HTML entity to unescape, a character whose lower
case is not one character or depends on context, bytes that are not strict UTF-8, a line that
is not three plain quoted fields) is marked FALLBACK and done in Python by the same rules
(`sentiment.text` / `sentiment.reviews`): rare, and still one definition.
"""

from __future__ import annotations

import re
from functools import cache

import numpy as np

from sentiment import _text

# Control, format and separator characters that are not plain spaces (they would break fastText's
# line format or make invisible token differences) become spaces (defined here, with
# the tables the compiled rules read, so that sentiment.text imports this module and not both
# ways). The line breaks `\n` and `\r` are not among them: they end a negation scope, and are
# whitespace (`\s`) to every other rule, so no output holds them either.
INVISIBLE_CHARS = (
    "[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]"
)

# Row status from clean_csv_lines.
KEPT, FALLBACK, REJECT_LABEL, DROP_POLICY, DROP_SHORT = 0, 1, 2, 3, 4

# Character class bits (the `flags` table; _text.c reads the same bits).
WORD, DIGIT, SPACE, INVISIBLE, SPECIAL_LOWER = 1, 2, 4, 8, 16


@cache
def tables() -> tuple[np.ndarray, np.ndarray]:
    """(flags, lower) per code point, from Python: `\\w`, `\\d`, `\\s` as its regex engine
    matches them, INVISIBLE_CHARS, and `str.lower` (SPECIAL_LOWER where it is not one character
    or depends on context: U+0130, capital sigma)."""
    every = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
    flags = np.zeros(0x110000, dtype=np.uint8)
    for bit, pattern in (
        (WORD, r"\w+"),
        (DIGIT, r"\d+"),
        (SPACE, r"\s+"),
        (INVISIBLE, INVISIBLE_CHARS + "+"),
    ):
        for m in re.finditer(pattern, every):
            flags[m.start() : m.end()] |= bit
    special = "\u0130\u03a3"
    for c in special:
        flags[ord(c)] |= SPECIAL_LOWER
    plain = every.translate({ord(c): 0 for c in special}).lower()
    lower = np.frombuffer(plain.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).copy()
    assert lower.shape[0] == 0x110000, "a lower-case mapping changed length: update `special`"
    return flags, lower


@cache
def crc_table() -> np.ndarray:
    """zlib's CRC-32 table (polynomial 0xEDB88320), for the validation split."""
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table[i] = c
    return table


def normalize_utf8(
    data: bytes, offsets: np.ndarray, flags: np.ndarray, lower: np.ndarray, opts: np.ndarray
) -> tuple[bytes, np.ndarray]:
    """Texts data[offsets[i]:offsets[i+1]] (UTF-8) -> (normalized texts as UTF-8 joined by
    newlines, fallback flag per text: 1 = Python must do it; its output line is empty).

    opts: `sentiment.text.kernel_options` (the Cleaning switches in the kernel's order)."""
    texts, fallback = _text.normalize_utf8(
        data, np.ascontiguousarray(offsets, np.int64), flags, lower, opts
    )
    return texts, np.frombuffer(fallback, np.uint8)


def normalize_one(
    data: bytes, flags: np.ndarray, lower: np.ndarray, opts: np.ndarray
) -> bytes | None:
    """One text's UTF-8 -> its normalized UTF-8, or None when Python must do it."""
    return _text.normalize_one(data, flags, lower, opts)


def normalizer() -> object:
    """The C entry `normalize_into(data, n, flags, nflags, lower, nlower, opts, nopts, out,
    cap)` in a capsule named "sentiment._text.normalize_into": the normalized length, -1 when
    Python must do it, -2 when longer than `cap` (or out of memory).
    sentiment.engine._core.Predictor calls it on a request's text."""
    return _text.normalizer()


def clean_csv_lines(
    data: np.ndarray,
    offsets: np.ndarray,
    layout_of: np.ndarray,
    split_of: np.ndarray,
    policy: np.ndarray,
    flags: np.ndarray,
    lower: np.ndarray,
    opts: np.ndarray,
    title_weight: int,
    min_tokens: int,
    seed_prefix: np.ndarray,
    fraction: float,
    crc: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Review lines data[offsets[i]:offsets[i+1]] -> (status, code, texts, text_offsets).

    layout_of[i]: row i's layout (0 full, 1 polarity); split_of[i]: its source split (0 test,
    1 validation, 2 train); policy[layout, stars]: class index or -1 (dropped by policy), -2 for
    a label outside the layout. opts: `sentiment.text.kernel_options`. A KEPT row's
    code is split << 16 | class, its text the next one in texts (UTF-8, offsets in
    text_offsets); validation is carved from train by CRC-32 of seed_prefix + text, as
    `sentiment.reviews.split_of` does.
    """
    status, code, texts, text_offsets = _text.clean_csv_lines(
        data,
        np.ascontiguousarray(offsets, np.int64),
        np.ascontiguousarray(layout_of, np.int8),
        np.ascontiguousarray(split_of, np.int8),
        np.ascontiguousarray(policy, np.int32),
        flags,
        lower,
        opts,
        int(title_weight),
        int(min_tokens),
        np.ascontiguousarray(seed_prefix, np.uint8),
        float(fraction),
        np.ascontiguousarray(crc, np.uint32),
    )
    return (
        np.frombuffer(status, np.uint8),
        np.frombuffer(code, np.int32),
        np.frombuffer(texts, np.uint8),
        np.frombuffer(text_offsets, np.int64),
    )
