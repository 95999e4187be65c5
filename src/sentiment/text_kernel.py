"""`sentiment.text.normalize` and the prepare job's row cleaning, compiled by numba.

Why hand-written and not a regex library: Python's `re` spends ~30 us on a typical review
(600 characters, ~100 tokens), which made normalization the cost of both the prepare job and a
served request. The fast regex engines (RE2 through pyarrow, Rust's through polars) have no
look-around and their own idea of `\\w`, so using them would mean a second definition that only
nearly agrees. This kernel is one linear pass per rule over the text's code points, with `\\w`,
`\\d`, `\\s` and lower case taken from Python itself (tables built from Python's regex engine
and `str.lower`), so the character classes are Python's exactly. tests/text_reference.py keeps
the rules as the regular expressions they are specified as, and the tests check this kernel
against them on every shared review and on generated edge cases.

Two entries:
- `normalize_utf8`: texts as UTF-8 bytes + offsets (what `sentiment.text.normalize_many` uses);
- `clean_csv_lines`: lines of an Amazon reviews CSV (what the Spark job's Arrow batches hold):
  parse, label policy, compose title + body, normalize, drop reason, validation split.
A text the kernel does not take on (an HTML entity to unescape, a character whose lower case is
not one character or depends on context, bytes that are not strict UTF-8, a line that is not
three plain quoted fields) is marked FALLBACK and done in Python by the same rules (`sentiment.
text` / `sentiment.reviews`): rare, and still one definition.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import numba
import numpy as np

from sentiment.text import INVISIBLE_CHARS

# Row status from clean_csv_lines.
KEPT, FALLBACK, REJECT_LABEL, DROP_POLICY, DROP_SHORT = 0, 1, 2, 3, 4

# Character class bits.
WORD, DIGIT, SPACE, INVISIBLE, SPECIAL_LOWER = 1, 2, 4, 8, 16
_APOS = ord("'")
_LT = ord("<")
_SPACE = np.uint8(32)
_NL = np.uint8(10)
_URL_TOKEN = np.array([ord(c) for c in " _url_ "], dtype=np.uint32)
_NUM_TOKEN = np.array([ord(c) for c in " _num_ "], dtype=np.uint32)
_LABEL_PREFIX = np.array([ord(c) for c in "__label__"], dtype=np.uint32)
# Emoticon pieces: eyes, noses, mouths after the eyes, mouths before the eyes.
_EYES = np.array([ord(c) for c in ":;="], dtype=np.uint32)
_NOSE = np.array([ord(c) for c in "-o*'"], dtype=np.uint32)
_MOUTH = np.array([ord(c) for c in ")]([dp/\\|@3"], dtype=np.uint32)
_MOUTH_FIRST = np.array([ord(c) for c in ")]([/\\"], dtype=np.uint32)
_NUMBER_JOINERS = np.array([ord(c) for c in ".,:"], dtype=np.uint32)


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


@numba.njit(cache=True, nogil=True, inline="always")
def _member(c: np.uint32, chars: np.ndarray) -> bool:
    for x in chars:
        if c == x:
            return True
    return False


@numba.njit(cache=True, nogil=True, inline="always")
def _put(token: np.ndarray, dst: np.ndarray, o: int) -> int:
    for t in token:
        dst[o] = t
        o += 1
    return o


@numba.njit(cache=True, nogil=True)
def _urls(src: np.ndarray, n: int, flags: np.ndarray, dst: np.ndarray) -> int:
    """`(?:https?://|www\\.)\\S+` (ASCII case-insensitive) -> ' _url_ '."""
    i = 0
    o = 0
    while i < n:
        c = src[i]
        p = -1  # end of the scheme/`www.` prefix when one starts here
        low = c | 32
        if low == 104 and i + 6 < n:  # h
            if (src[i + 1] | 32) == 116 and (src[i + 2] | 32) == 116 and (src[i + 3] | 32) == 112:
                j = i + 4
                if (src[j] | 32) == 115:  # s
                    j += 1
                if j + 2 < n and src[j] == 58 and src[j + 1] == 47 and src[j + 2] == 47:
                    p = j + 3
        elif low == 119 and i + 4 < n:  # w
            if (src[i + 1] | 32) == 119 and (src[i + 2] | 32) == 119 and src[i + 3] == 46:
                p = i + 4
        if p > 0:
            e = p
            while e < n and not flags[src[e]] & SPACE:
                e += 1
            if e > p:
                o = _put(_URL_TOKEN, dst, o)
                i = e
                continue
        dst[o] = c
        o += 1
        i += 1
    return o


@numba.njit(cache=True, nogil=True)
def _numbers(src: np.ndarray, n: int, flags: np.ndarray, dst: np.ndarray) -> int:
    """`\\d(?<![<\\w]\\d)\\d*(?:[.,:]\\d+)*\\b` -> ' _num_ '.

    The match is a chain of digit runs joined by single `.`, `,` or `:`; the regex takes the
    longest chain whose end is a word boundary, which is the whole chain when a non-word
    character (or the end) follows it, else the chain without its last run (if it has two).
    """
    i = 0
    o = 0
    while i < n:
        c = src[i]
        end = -1
        if flags[c] & DIGIT and (i == 0 or not (flags[src[i - 1]] & WORD or src[i - 1] == _LT)):
            j = i + 1
            while j < n and flags[src[j]] & DIGIT:
                j += 1
            before = -1  # end of the chain without its last run
            while j + 1 < n and _member(src[j], _NUMBER_JOINERS) and flags[src[j + 1]] & DIGIT:
                before = j
                j += 2
                while j < n and flags[src[j]] & DIGIT:
                    j += 1
            end = j if (j == n or not flags[src[j]] & WORD) else before
        if end > 0:
            o = _put(_NUM_TOKEN, dst, o)
            i = end
            continue
        dst[o] = c
        o += 1
        i += 1
    return o


@numba.njit(cache=True, nogil=True)
def _all_in(src: np.ndarray, a: int, b: int, chars: np.ndarray) -> bool:
    if a >= b:
        return False
    for k in range(a, b):
        if not _member(src[k], chars):
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _is_emoticon(src: np.ndarray, a: int, b: int) -> bool:
    """The whole chunk src[a:b] is `[:;=][-o*']?[)\\](\\[dp/\\\\|@3]+`, `<3+` or
    `[)\\](\\[/\\\\]+[-o*']?[:;=]`."""
    if b - a < 2:
        return False
    first = src[a]
    if _member(first, _EYES):
        if _all_in(src, a + 1, b, _MOUTH):
            return True
        if _member(src[a + 1], _NOSE) and _all_in(src, a + 2, b, _MOUTH):
            return True
        return False
    if first == _LT:
        for k in range(a + 1, b):
            if src[k] != 51:  # '3'
                return False
        return True
    if _member(src[b - 1], _EYES):
        if _all_in(src, a, b - 1, _MOUTH_FIRST):
            return True
        if _member(src[b - 2], _NOSE) and _all_in(src, a, b - 2, _MOUTH_FIRST):
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _tokens(
    src: np.ndarray, n: int, flags: np.ndarray, split: bool, dst: np.ndarray, o: int
) -> int:
    """Tokens (`\\w+(?:'\\w+)*`, whole-chunk emoticons, any other non-space character; or
    whitespace-separated chunks when not `split`) written as UTF-8 from dst[o] on, joined by
    single spaces; a token starting with `__label__` loses its leading underscores. Returns the
    new end."""
    i = 0
    need_space = False
    while i < n:
        c = src[i]
        if flags[c] & SPACE:
            i += 1
            continue
        if not split:
            j = i + 1
            while j < n and not flags[src[j]] & SPACE:
                j += 1
        elif flags[c] & WORD:
            j = i + 1
            while j < n and flags[src[j]] & WORD:
                j += 1
            while j + 1 < n and src[j] == _APOS and flags[src[j + 1]] & WORD:
                j += 2
                while j < n and flags[src[j]] & WORD:
                    j += 1
        else:
            j = i + 1
            if i == 0 or flags[src[i - 1]] & SPACE:
                m = i + 1
                while m < n and not flags[src[m]] & SPACE:
                    m += 1
                if _is_emoticon(src, i, m):
                    j = m
        if need_space:
            dst[o] = _SPACE
            o += 1
        k = i
        if c == 95 and _starts_with(src, i, j, _LABEL_PREFIX):
            while src[k] == 95:
                k += 1
        while k < j:
            o = _utf8(src[k], dst, o)
            k += 1
        need_space = True
        i = j
    return o


@numba.njit(cache=True, nogil=True, inline="always")
def _starts_with(src: np.ndarray, a: int, b: int, prefix: np.ndarray) -> bool:
    if b - a < prefix.shape[0]:
        return False
    for k in range(prefix.shape[0]):
        if src[a + k] != prefix[k]:
            return False
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _utf8(c: np.uint32, dst: np.ndarray, o: int) -> int:
    """Write code point c as UTF-8 (lone surrogates as their 3-byte form: "surrogatepass")."""
    if c < 0x80:
        dst[o] = c
        return o + 1
    if c < 0x800:
        dst[o] = 0xC0 | (c >> 6)
        dst[o + 1] = 0x80 | (c & 0x3F)
        return o + 2
    if c < 0x10000:
        dst[o] = 0xE0 | (c >> 12)
        dst[o + 1] = 0x80 | ((c >> 6) & 0x3F)
        dst[o + 2] = 0x80 | (c & 0x3F)
        return o + 3
    dst[o] = 0xF0 | (c >> 18)
    dst[o + 1] = 0x80 | ((c >> 12) & 0x3F)
    dst[o + 2] = 0x80 | ((c >> 6) & 0x3F)
    dst[o + 3] = 0x80 | (c & 0x3F)
    return o + 4


@numba.njit(cache=True, nogil=True)
def _decode(src: np.ndarray, a: int, b: int, text_mode: bool, dst: np.ndarray, o: int) -> int:
    """Strict UTF-8 src[a:b] as code points appended at dst[o]; -1 when Python must decide.

    In text mode the bytes came from a Python str ("surrogatepass"), so encoded surrogates are
    characters; in CSV mode they and U+FFFD are what Python's decoding would reject.
    Quoted-field escapes (`""`) are not undone here: see `_field`.
    """
    i = a
    while i < b:
        c = np.uint32(src[i])
        if c < 0x80:
            dst[o] = c
            o += 1
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            need = 1
            cp = c & 0x1F
        elif 0xE0 <= c <= 0xEF:
            need = 2
            cp = c & 0x0F
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED and not text_mode:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            need = 3
            cp = c & 0x07
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return -1
        if i + need >= b:
            return -1
        c1 = np.uint32(src[i + 1])
        if c1 < lo or c1 > hi:
            return -1
        cp = (cp << 6) | (c1 & 0x3F)
        for k in range(2, need + 1):
            ck = np.uint32(src[i + k])
            if ck < 0x80 or ck > 0xBF:
                return -1
            cp = (cp << 6) | (ck & 0x3F)
        if cp == 0xFFFD and not text_mode:
            return -1
        dst[o] = cp
        o += 1
        i += need + 1
    return o


@numba.njit(cache=True, nogil=True)
def _prelude(
    src: np.ndarray,
    n: int,
    flags: np.ndarray,
    lower: np.ndarray,
    unescape: bool,
    literal_newlines: bool,
    lowercase: bool,
    dst: np.ndarray,
) -> int:
    """Literal `\\n`/`\\r`/`\\t` and invisible characters to spaces, lower case; -1 when the
    text needs Python (an `&` to unescape first, a lower case that is not one character)."""
    i = 0
    o = 0
    while i < n:
        c = src[i]
        if (unescape and c == 38) or (lowercase and flags[c] & SPECIAL_LOWER):
            return -1
        if literal_newlines and c == 92 and i + 1 < n:
            d = src[i + 1]
            if d == 110 or d == 114 or d == 116:
                dst[o] = 32
                o += 1
                i += 2
                continue
        if flags[c] & INVISIBLE:
            dst[o] = 32
        elif lowercase:
            dst[o] = lower[c]
        else:
            dst[o] = c
        o += 1
        i += 1
    return o


@numba.njit(cache=True, nogil=True)
def _grown(buf: np.ndarray, used: int, need: int) -> np.ndarray:
    if need <= buf.shape[0]:
        return buf
    bigger = np.empty(max(need, 2 * buf.shape[0]), dtype=buf.dtype)
    bigger[:used] = buf[:used]
    return bigger


@numba.njit(cache=True, nogil=True)
def _pipeline(
    cps: np.ndarray,
    n: int,
    tabs: tuple[np.ndarray, np.ndarray],
    opts: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray],
    out: np.ndarray,
    o: int,
) -> tuple[int, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Code points cps[:n] through the prelude, URLs, numbers and tokens, as UTF-8 at out[o].
    Returns (new end or -1 for FALLBACK, out, scratch) (buffers may have grown)."""
    flags, lower = tabs
    a, b = scratch
    a = _grown(a, 0, n + 8)
    n = _prelude(cps, n, flags, lower, opts[0], opts[1], opts[2], a)
    if n < 0:
        return -1, out, (a, b)
    b = _grown(b, 0, 2 * n + 8)
    if opts[3]:
        n = _urls(a, n, flags, b)
        a, b = b, a
    b = _grown(b, 0, 7 * n + 8)
    if opts[4]:
        n = _numbers(a, n, flags, b)
        a, b = b, a
    out = _grown(out, o, o + 8 * n + 1)
    o = _tokens(a, n, flags, opts[5], out, o)
    return o, out, (a, b)


@numba.njit(cache=True, nogil=True)
def normalize_utf8(
    data: np.ndarray, offsets: np.ndarray, flags: np.ndarray, lower: np.ndarray, opts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Texts data[offsets[i]:offsets[i+1]] (UTF-8) -> (normalized texts as UTF-8 joined by
    newlines, fallback flag per text: 1 = Python must do it; its output line is empty).

    opts: unescape_html, literal_newlines, lowercase, urls, numbers, split_punctuation."""
    count = offsets.shape[0] - 1
    out = np.empty(data.shape[0] + data.shape[0] // 4 + 16, dtype=np.uint8)
    cps = np.empty(256, dtype=np.uint32)
    scratch = (np.empty(256, dtype=np.uint32), np.empty(256, dtype=np.uint32))
    fallback = np.zeros(count, dtype=np.uint8)
    o = 0
    for t in range(count):
        a = offsets[t]
        b = offsets[t + 1]
        cps = _grown(cps, 0, b - a + 1)
        n = _decode(data, a, b, True, cps, 0)
        end = -1
        if n >= 0:
            end, out, scratch = _pipeline(cps, n, (flags, lower), opts, scratch, out, o)
        if end < 0:
            fallback[t] = 1
        else:
            o = end
        out = _grown(out, o, o + 1)
        if t + 1 < count:
            out[o] = _NL
            o += 1
    return out[:o], fallback


@numba.njit(cache=True, nogil=True)
def normalize_one(
    data: np.ndarray, flags: np.ndarray, lower: np.ndarray, opts: np.ndarray
) -> tuple[np.ndarray, bool]:
    """One text's UTF-8 -> (normalized UTF-8, True when Python must do it): `normalize_utf8`
    without the batch bookkeeping, for the served one-text requests."""
    n = data.shape[0]
    cps = np.empty(n + 1, dtype=np.uint32)
    n = _decode(data, 0, n, True, cps, 0)
    if n < 0:
        return np.empty(0, dtype=np.uint8), True
    scratch = (np.empty(2 * n + 8, dtype=np.uint32), np.empty(7 * n + 8, dtype=np.uint32))
    out = np.empty(2 * n + 8, dtype=np.uint8)
    end, out, scratch = _pipeline(cps, n, (flags, lower), opts, scratch, out, 0)
    if end < 0:
        return np.empty(0, dtype=np.uint8), True
    return out[:end], False


# A C entry to `normalize_one`, for the served model (sentiment.engine._core.Predictor calls it
# through its address): no Python objects between a request's text and its prediction.
_C_TEXT = numba.types.CPointer(numba.types.uint8)
_C_TABLE = numba.types.CPointer(numba.types.uint32)


@numba.cfunc(
    numba.types.int64(
        _C_TEXT, numba.types.int64, _C_TEXT, numba.types.int64, _C_TABLE, numba.types.int64,
        _C_TEXT, numba.types.int64, _C_TEXT, numba.types.int64,
    ),
    cache=True,
)  # fmt: skip
def normalize_into(
    data: Any,
    n: int,
    flags: Any,
    nflags: int,
    lower: Any,
    nlower: int,
    opts: Any,
    nopts: int,
    out: Any,
    cap: int,
) -> int:
    """`normalize_one` on n UTF-8 bytes at `data`, written to `out` (cap bytes): the length,
    -1 when Python must do it (FALLBACK), -2 when the result is longer than `cap` (numbers
    standing alone can grow a text: "1 2 3" is "_num_ _num_ _num_"; the caller then takes the
    Python path too)."""
    text = numba.carray(data, n)
    result, fallback = normalize_one(
        text,
        numba.carray(flags, nflags),
        numba.carray(lower, nlower),
        numba.carray(opts, nopts),
    )
    if fallback:
        return -1
    m = result.shape[0]
    if m > cap:
        return -2
    target = numba.carray(out, cap)
    for i in range(m):
        target[i] = result[i]
    return m


@numba.njit(cache=True, nogil=True)
def _field(line: np.ndarray, a: int, b: int) -> int:
    """End of the quoted field whose opening quote is at line[a]: the index of its closing
    quote (`""` inside is an escaped quote), or -1. Greedy, as the regex `"([^"]*(?:""[^"]*)*)"`
    tries first."""
    i = a + 1
    while i < b:
        if line[i] == 34:
            if i + 1 < b and line[i + 1] == 34:
                i += 2
                continue
            return i
        i += 1
    return -1


@numba.njit(cache=True, nogil=True)
def _unquote(cps: np.ndarray, a: int, n: int) -> int:
    """Collapse `""` to `"` in cps[a:n] in place; returns the new end."""
    o = a
    i = a
    while i < n:
        cps[o] = cps[i]
        if cps[i] == 34 and i + 1 < n and cps[i + 1] == 34:
            i += 1
        o += 1
        i += 1
    return o


@numba.njit(cache=True, nogil=True)
def _count_spaces(buf: np.ndarray, a: int, b: int) -> int:
    n = 0
    for k in range(a, b):
        if buf[k] == 32:
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
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
    a label outside the layout. opts: the six Cleaning switches, then include_title. A KEPT row's
    code is split << 16 | class, its text the next one in texts (UTF-8, offsets in
    text_offsets); validation is carved from train by CRC-32 of seed_prefix + text, as
    `sentiment.reviews.split_of` does.
    """
    count = offsets.shape[0] - 1
    status = np.empty(count, dtype=np.uint8)
    code = np.zeros(count, dtype=np.int32)
    out = np.empty(data.shape[0] + 16, dtype=np.uint8)
    text_offsets = np.zeros(count + 1, dtype=np.int64)
    kept = 0
    cps = np.empty(1024, dtype=np.uint32)
    composed = np.empty(1024, dtype=np.uint32)
    scratch = (np.empty(1024, dtype=np.uint32), np.empty(1024, dtype=np.uint32))
    prefix_crc = np.uint32(0xFFFFFFFF)
    for x in seed_prefix:
        prefix_crc = crc[(prefix_crc ^ x) & 0xFF] ^ (prefix_crc >> 8)
    o = 0
    for r in range(count):
        status[r] = FALLBACK
        a = offsets[r]
        b = offsets[r + 1]
        while b > a and (data[b - 1] == 10 or data[b - 1] == 13):
            b -= 1
        # "label","title","body": three fields, nothing around them.
        if b - a < 8 or data[a] != 34:
            continue
        e1 = _field(data, a, b)
        if e1 < 0 or e1 + 2 >= b or data[e1 + 1] != 44 or data[e1 + 2] != 34:
            continue
        e2 = _field(data, e1 + 2, b)
        if e2 < 0 or e2 + 2 >= b or data[e2 + 1] != 44 or data[e2 + 2] != 34:
            continue
        e3 = _field(data, e2 + 2, b)
        if e3 != b - 1:
            continue
        cps = _grown(cps, 0, b - a + 1)
        title_end = _decode(data, e1 + 3, e2, False, cps, 0)
        if title_end < 0:
            continue
        body_end = _decode(data, e2 + 3, e3, False, cps, title_end)
        if body_end < 0:
            continue
        if e1 - a != 2 or not (49 <= data[a + 1] <= 53):
            status[r] = REJECT_LABEL
            continue
        cls = policy[layout_of[r], data[a + 1] - 48]
        if cls == -2:
            status[r] = REJECT_LABEL
            continue
        if cls == -1:
            status[r] = DROP_POLICY
            continue
        body_end = _unquote(cps, title_end, body_end)  # body first: it sits after the title
        body_start = title_end
        title_end = _unquote(cps, 0, title_end)
        composed = _grown(composed, 0, (title_weight + 1) * body_end + 8)
        m = 0
        if opts[6] and title_end > 0:
            for _ in range(max(1, title_weight)):
                composed[m : m + title_end] = cps[:title_end]
                m += title_end
                composed[m] = 32
                m += 1
        composed[m : m + body_end - body_start] = cps[body_start:body_end]
        m += body_end - body_start
        end, out, scratch = _pipeline(composed, m, (flags, lower), opts, scratch, out, o)
        if end < 0:
            continue
        if end == o or (min_tokens > 1 and _count_spaces(out, o, end) + 1 < min_tokens):
            status[r] = DROP_SHORT
            continue
        split = split_of[r]
        if split == 2 and fraction > 0:
            h = prefix_crc
            for k in range(o, end):
                h = crc[(h ^ out[k]) & 0xFF] ^ (h >> 8)
            if (h ^ np.uint32(0xFFFFFFFF)) / 4294967295.0 < fraction:
                split = 1
        status[r] = KEPT
        code[r] = (split << 16) | cls
        o = end
        kept += 1
        text_offsets[kept] = o
    return status, code, out[:o], text_offsets[: kept + 1]
