"""fastText's dictionary and line encoding, over whole files at once.

A training file is read as bytes and scanned by the compiled core (`_core.c`) into tokens
(fastText's whitespace rules, an end-of-sentence token `</s>` at each newline). Each token gets two hashes:
fastText's 32-bit FNV-1a (bytes sign-extended before the xor, as fastText's `int8_t` cast does),
which feeds the word n-gram buckets, and a 64-bit FNV-1a that identifies the word (so the
vocabulary is built with numpy instead of a Python dict per token).

Encoding a line follows fastText's `Dictionary::getLine` for supervised mode: known words
give their id, labels their label index, unknown words nothing; every word token (known or
not, `</s>` included) contributes its 32-bit hash to the n-gram list, and n-gram ids are
`nwords + (h % buckets)` with `h = h * 116049371 + hash` in 64-bit unsigned arithmetic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sentiment import labels
from sentiment.engine import _core
from sentiment.errors import DataError

LABEL_PREFIX = labels.LABEL_PREFIX.encode()
EOS = b"</s>"
WORD, LABEL = 0, 1


@dataclass
class Tokens:
    """A scanned file: per-token hashes and line numbers, plus the bytes to read words from."""

    buf: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    h32: np.ndarray
    h64: np.ndarray
    line_of: np.ndarray
    nlines: int

    def word(self, index: int) -> bytes:
        start = int(self.starts[index])
        if start < 0:
            return EOS
        return self.buf[start : start + int(self.lengths[index])].tobytes()


# Files are scanned in pieces of about this size (cut after a newline), so that the per-token
# arrays of a scan (32 bytes a token) exist for one piece at a time, not for the whole corpus.
CHUNK_BYTES = 1 << 20


def scan(buf: np.ndarray) -> Tokens:
    """Tokenize bytes that hold whole lines."""
    ntok, nlines = _core.count_tokens(buf)
    starts = np.empty(ntok, np.int64)
    lengths = np.empty(ntok, np.int32)
    h32 = np.empty(ntok, np.int32)
    h64 = np.empty(ntok, np.uint64)
    line_of = np.empty(ntok, np.int64)
    k = _core.scan(buf, starts, lengths, h32, h64, line_of)
    return Tokens(buf, starts[:k], lengths[:k], h32[:k], h64[:k], line_of[:k], nlines)


def scan_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Tokens]:
    """A training/validation file, read and tokenized one piece of whole lines at a time."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below; a generator)
    except OSError as err:
        raise DataError(f"Cannot read {path}: {err}.") from None
    with fh:
        carry = b""
        while True:
            block = fh.read(max(1, chunk_bytes))
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # no newline yet: a very long line, read on
                carry = data
                continue
            carry = data[cut:]
            yield scan(np.frombuffer(data[:cut], np.uint8))
        if carry:
            yield scan(np.frombuffer(carry, np.uint8))


@dataclass
class Dictionary:
    """fastText's dictionary: words (count >= min_count) then labels, each by count descending."""

    words: list[bytes]  # words first, then labels, in id order
    counts: np.ndarray  # int64, same order
    nwords: int
    nlabels: int
    ntokens: int
    keys: np.ndarray  # sorted uint64 word keys (hash64) ...
    key_ids: np.ndarray  # ... and the dictionary id (or -1) of each

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(w.decode("utf-8", "replace") for w in self.words[self.nwords :])

    def types(self) -> np.ndarray:
        out = np.zeros(len(self.words), np.int8)
        out[self.nwords :] = LABEL
        return out


def build_dictionary(
    tokens: Tokens | Iterable[Tokens], min_count: int, *, min_count_label: int = 1
) -> Dictionary:
    """Count the words of a scanned file (whole, or piece by piece) and keep those fastText would keep."""
    pieces = [tokens] if isinstance(tokens, Tokens) else tokens
    # Running (sorted unique keys, counts, first position), merged with each piece's: memory
    # holds the vocabulary, not one entry per distinct word per piece.
    keys = np.zeros(0, np.uint64)
    counts = np.zeros(0, np.int64)
    first = np.zeros(0, np.int64)
    texts_by_key: dict[int, bytes] = {}
    ntokens = 0
    for piece in pieces:
        piece_keys, piece_first, piece_counts = np.unique(
            piece.h64, return_index=True, return_counts=True
        )
        new = np.flatnonzero(~np.isin(piece_keys, keys, assume_unique=True))
        for key, index in zip(piece_keys[new].tolist(), piece_first[new].tolist(), strict=True):
            texts_by_key[key] = piece.word(index)
        merged, inverse = np.unique(np.concatenate([keys, piece_keys]), return_inverse=True)
        merged_counts = np.zeros(merged.size, np.int64)
        np.add.at(merged_counts, inverse, np.concatenate([counts, piece_counts]))
        merged_first = np.full(merged.size, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(merged_first, inverse, np.concatenate([first, piece_first + ntokens]))
        keys, counts, first = merged, merged_counts, merged_first
        ntokens += int(piece.h64.size)
    if ntokens == 0:
        raise DataError(
            "The training file is empty.",
            hint="Run `sentiment prepare` first, or check the --train path.",
        )
    texts = [texts_by_key[key] for key in keys.tolist()]
    is_label = np.array([word.startswith(LABEL_PREFIX) for word in texts], np.bool_)
    keep_word = (~is_label) & (counts >= min_count)
    keep_label = is_label & (counts >= min_count_label)
    if not keep_label.any():
        raise DataError(
            "The training file has no labels (`__label__name` tokens).",
            hint="Give a file in BlazingText's format, as `sentiment prepare` writes it.",
        )
    # fastText sorts words before labels, each by count, most frequent first; equal counts keep
    # the order of first appearance.
    order_words = np.flatnonzero(keep_word)
    order_words = order_words[np.lexsort((first[order_words], -counts[order_words]))]
    order_labels = np.flatnonzero(keep_label)
    order_labels = order_labels[np.lexsort((first[order_labels], -counts[order_labels]))]
    order = np.concatenate([order_words, order_labels])
    key_ids = np.full(keys.size, -1, np.int32)
    key_ids[order] = np.arange(order.size, dtype=np.int32)
    return Dictionary(
        words=[texts[u] for u in order],
        counts=counts[order].astype(np.int64),
        nwords=int(order_words.size),
        nlabels=int(order_labels.size),
        ntokens=ntokens,
        keys=keys,
        key_ids=key_ids,
    )


@dataclass
class Encoded:
    """Lines as model input: ids per line (words + n-grams), labels per line, tokens per line."""

    line_ptr: np.ndarray  # int64, nlines + 1
    ids: np.ndarray  # int32
    label_ptr: np.ndarray  # int64, nlines + 1
    labels: np.ndarray  # int32 (label index, 0..nlabels-1)
    ntok: np.ndarray  # int32 tokens read per line (for the learning-rate schedule)

    @property
    def nlines(self) -> int:
        return int(self.line_ptr.size - 1)

    @property
    def ntokens(self) -> int:
        return int(self.ntok.sum())


def encode(tokens: Tokens, dictionary: Dictionary, word_ngrams: int, buckets: int) -> Encoded:
    """Model input for every line of a scanned file, with this dictionary."""
    pos = np.searchsorted(dictionary.keys, tokens.h64)
    pos = np.minimum(pos, dictionary.keys.size - 1)
    found = dictionary.keys[pos] == tokens.h64
    tok_id = np.where(found, dictionary.key_ids[pos], -1).astype(np.int32)
    # A token's type comes from the dictionary when known, else from its prefix.
    tok_label = np.zeros(tok_id.size, np.bool_)
    known = tok_id >= 0
    tok_label[known] = tok_id[known] >= dictionary.nwords
    unknown = np.flatnonzero(~known)
    if unknown.size:
        prefix = np.frombuffer(LABEL_PREFIX, np.uint8)
        starts = tokens.starts[unknown]
        ok = (starts >= 0) & (tokens.lengths[unknown] >= prefix.size)
        cand = unknown[ok]
        if cand.size:
            offsets = tokens.starts[cand][:, None] + np.arange(prefix.size)[None, :]
            tok_label[cand] = (tokens.buf[offsets] == prefix).all(axis=1)
    n, nlines = tok_id.size, tokens.nlines
    # Upper bounds: every token an id plus (word_ngrams - 1) n-grams; every token a label.
    ids = np.empty(n * max(1, word_ngrams), np.int32)
    labels = np.empty(n, np.int32)
    line_ptr = np.empty(nlines + 1, np.int64)
    label_ptr = np.empty(nlines + 1, np.int64)
    ntok = np.empty(nlines, np.int32)
    k, m = _core.encode(
        tok_id, tok_label.view(np.uint8), np.ascontiguousarray(tokens.h32),
        np.ascontiguousarray(tokens.line_of), dictionary.nwords, word_ngrams, buckets,
        line_ptr, ids, label_ptr, labels, ntok,
    )  # fmt: skip
    return Encoded(line_ptr, ids[:k].copy(), label_ptr, labels[:m].copy(), ntok)


def encode_chunks(
    pieces: Iterable[Tokens], dictionary: Dictionary, word_ngrams: int, buckets: int
) -> Encoded:
    """`encode` piece by piece, joined (a validation file: training streams its pieces)."""
    return join_encoded([encode(piece, dictionary, word_ngrams, buckets) for piece in pieces])


def join_encoded(parts: list[Encoded]) -> Encoded:
    """Encoded lines one after another."""
    if len(parts) == 1:
        return parts[0]
    if not parts:
        empty = np.zeros(1, np.int64)
        return Encoded(
            empty, np.zeros(0, np.int32), empty.copy(), np.zeros(0, np.int32), np.zeros(0, np.int32)
        )
    id_offsets = np.cumsum([0] + [int(p.line_ptr[-1]) for p in parts[:-1]])
    label_offsets = np.cumsum([0] + [int(p.label_ptr[-1]) for p in parts[:-1]])
    return Encoded(
        np.concatenate(
            [np.zeros(1, np.int64)]
            + [p.line_ptr[1:] + o for p, o in zip(parts, id_offsets, strict=True)]
        ),
        np.concatenate([p.ids for p in parts]),
        np.concatenate(
            [np.zeros(1, np.int64)]
            + [p.label_ptr[1:] + o for p, o in zip(parts, label_offsets, strict=True)]
        ),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.ntok for p in parts]),
    )
