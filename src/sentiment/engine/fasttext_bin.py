"""fastText's binary model format (`.bin`, version 12), written and read by us.

The layout (fastText's `FastText::saveModel`): magic 793712314 and version 12 (int32); the
arguments (int32 dim, ws, epoch, minCount, neg, wordNgrams, loss, model, bucket, minn, maxn,
lrUpdateRate, then a float64 t); the dictionary (int32 size, nwords, nlabels, int64 ntokens,
int64 pruneidx_size = -1, then per entry the word's bytes with a NUL, int64 count, int8 type);
a quantization flag (0); the input matrix (int64 rows, int64 cols, float32 data); a
quantization flag (0); the output matrix. Little-endian, as fastText writes on x86/ARM.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sentiment.errors import ModelError
from sentiment.files import atomic_path

MAGIC = 793712314
VERSION = 12
LOSS = {"hs": 1, "ns": 2, "softmax": 3, "ova": 4}
MODEL_SUPERVISED = 3


@dataclass
class BinModel:
    """What a fastText supervised `.bin` holds."""

    dim: int
    epoch: int
    min_count: int
    word_ngrams: int
    loss: str
    buckets: int
    lr_update_rate: int
    words: list[bytes]
    counts: np.ndarray
    types: np.ndarray
    ntokens: int
    wi: np.ndarray
    wo: np.ndarray
    minn: int = 0
    maxn: int = 0

    @property
    def nwords(self) -> int:
        return int((self.types == 0).sum())


def write_bin(path: Path, model: BinModel) -> None:
    """Write `model` as a fastText .bin, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        out.write(struct.pack("<ii", MAGIC, VERSION))
        out.write(
            struct.pack(
                "<12id",
                model.dim,
                5,  # ws (unused in supervised mode)
                model.epoch,
                model.min_count,
                5,  # neg (unused with softmax)
                model.word_ngrams,
                LOSS[model.loss],
                MODEL_SUPERVISED,
                model.buckets,
                model.minn,
                model.maxn,
                model.lr_update_rate,
                1e-4,  # t (sampling threshold, unused in supervised mode)
            )
        )
        nwords = model.nwords
        out.write(
            struct.pack(
                "<iiiqq", len(model.words), nwords, len(model.words) - nwords, model.ntokens, -1
            )
        )
        for word, count, kind in zip(model.words, model.counts, model.types, strict=True):
            out.write(word + b"\0")
            out.write(struct.pack("<qb", int(count), int(kind)))
        out.write(b"\0")
        _write_matrix(out, model.wi)
        out.write(b"\0")
        _write_matrix(out, model.wo)


def _write_matrix(out: BinaryIO, matrix: np.ndarray) -> None:
    rows, cols = matrix.shape
    out.write(struct.pack("<qq", rows, cols))
    # The array's own buffer, not a bytes copy (the input matrix is 80 MB at 2M buckets x 10).
    out.write(np.ascontiguousarray(matrix, dtype="<f4").data)


class QuantizedModel(ModelError):
    """A whole, plausible quantized model (.ftz layout): the fastText library reads it, not us."""


# Bounds no real supervised model comes near; a header beyond them is corrupt, and refusing it
# keeps a tampered count from making anyone allocate gigabytes (the fastText library, handed a
# 1,000-byte head of a model, grew to several GB for ~20 s before failing).
MAX_DIM = 1 << 16
MAX_WORDS = (1 << 31) - 1
KSUB = 256  # centroids per sub-quantizer of fastText's product quantizer


def read_bin(path: Path, *, mapped: bool = False) -> BinModel:
    """Read a fastText supervised .bin (ours or one trained by fastText or SageMaker BlazingText).

    The file must be whole: every header field plausible, the matrices the shapes the header
    gives, and nothing after them (a model truncated or tampered with is refused here, at once).
    A whole quantized model raises `QuantizedModel` (the fastText library reads those).
    With `mapped`, the weight matrices are read-only views of the file mapped into memory, so
    processes serving the same file share one copy of them (the page cache's); otherwise they
    are arrays of their own."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise EOFError("the file is empty")
            view = memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
        return _read(view, path, mapped)
    except (struct.error, ValueError, EOFError, OSError, IndexError) as err:
        raise ModelError(f"{path} is not a readable fastText model: {err}.") from None


def _read(view: memoryview, path: Path, mapped: bool) -> BinModel:
    magic, version = struct.unpack_from("<ii", view, 0)
    if magic != MAGIC or not 11 <= version <= VERSION:
        raise ModelError(f"{path} is not a fastText model file (magic {magic}, version {version}).")
    args = struct.unpack_from("<12id", view, 8)
    (
        dim,
        _ws,
        epoch,
        min_count,
        _neg,
        word_ngrams,
        loss,
        model,
        buckets,
        minn,
        maxn,
        lr_update_rate,
        _t,
    ) = args
    if model != MODEL_SUPERVISED:
        raise ModelError(f"{path} is a word-vector model, not a text classifier.")
    size, nwords, nlabels, ntokens, prune = struct.unpack_from("<iiiqq", view, 64)
    _check(
        0 < dim <= MAX_DIM
        and loss in LOSS.values()
        and word_ngrams >= 1
        and 0 <= buckets <= MAX_WORDS
        and 0 <= minn <= maxn
        and nwords >= 0
        and nlabels >= 1
        and size == nwords + nlabels
        and prune >= -1,
        "its header is inconsistent",
    )
    # each entry takes at least 10 bytes (NUL, count, type)
    _check(size * 10 <= len(view), f"it is too short for the {size:,} words it counts (cut?)")
    pos = 92
    raw = view.obj  # the mmap: its find() locates each word's NUL without copying the file
    assert isinstance(raw, mmap.mmap)
    words, counts, types = [], [], []
    entry = struct.Struct("<qb")
    for _ in range(size):
        end = raw.find(b"\0", pos)
        if end < 0:
            raise EOFError("the file ends inside the dictionary")
        words.append(bytes(view[pos:end]))
        count, kind = entry.unpack_from(view, end + 1)
        counts.append(count)
        types.append(kind)
        pos = end + 1 + entry.size
    kinds = np.array(types, np.int8)
    _check(
        int((kinds == 0).sum()) == nwords and bool(((kinds == 0) | (kinds == 1)).all()),
        "its dictionary does not match its header",
    )
    if prune > 0:
        pos += prune * 8
    quantized = view[pos] != 0
    if quantized:  # pruned word rows are allowed there: fastText checks them itself
        pos = _skip_quantized(view, pos + 1, dim)
        pos = _skip_quantized(view, pos + 1, dim) if view[pos] else _skip_dense(view, pos + 1)
        _check(pos == len(view), f"it has {len(view) - pos} bytes after the model")
        raise QuantizedModel(f"{path} is a quantized fastText model.")
    wi, pos = _read_matrix(view, pos + 1, mapped)
    _check(view[pos] == 0, "its output matrix is quantized but its input matrix is not")
    wo, pos = _read_matrix(view, pos + 1, mapped)
    _check(
        wi.shape == (nwords + buckets, dim) and wo.shape == (nlabels, dim),
        f"its matrices ({wi.shape}, {wo.shape}) do not have the shapes its header gives",
    )
    _check(pos == len(view), f"it has {len(view) - pos} bytes after the model")
    names = {v: k for k, v in LOSS.items()}
    return BinModel(
        dim=dim,
        epoch=epoch,
        min_count=min_count,
        word_ngrams=word_ngrams,
        loss=names[loss],
        buckets=buckets,
        lr_update_rate=lr_update_rate,
        words=words,
        counts=np.array(counts, np.int64),
        types=kinds,
        ntokens=ntokens,
        wi=wi,
        wo=wo,
        minn=minn,
        maxn=maxn,
    )


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _read_matrix(view: memoryview, pos: int, mapped: bool) -> tuple[np.ndarray, int]:
    rows, cols = struct.unpack_from("<qq", view, pos)
    pos += 16
    if rows < 0 or cols < 0 or pos + rows * cols * 4 > len(view):
        raise EOFError("the file ends inside a matrix")
    data = np.frombuffer(view, dtype="<f4", count=rows * cols, offset=pos).reshape(rows, cols)
    return (data if mapped else data.astype(np.float32)), pos + rows * cols * 4


def _skip_dense(view: memoryview, pos: int) -> int:
    rows, cols = struct.unpack_from("<qq", view, pos)
    _check(rows >= 0 and 0 <= cols <= MAX_DIM, "a matrix has a negative size")
    return pos + 16 + rows * cols * 4


def _skip_quantized(view: memoryview, pos: int, dim: int) -> int:
    """Past one of fastText's QuantMatrix (bool qnorm, int64 m, n, int32 codesize, the codes,
    a product quantizer, then with qnorm the norms' codes and their quantizer)."""
    qnorm, m, n, codesize = struct.unpack_from("<?qqi", view, pos)
    _check(m >= 0 and n == dim and codesize >= 0, "a quantized matrix has an impossible size")
    pos = _skip_quantizer(view, pos + 21 + codesize, dim)
    if qnorm:
        pos = _skip_quantizer(view, pos + m, 1)
    _check(pos <= len(view), "the file ends inside a quantized matrix")
    return pos


def _skip_quantizer(view: memoryview, pos: int, dim: int) -> int:
    qdim, nsubq, dsub, _lastdsub = struct.unpack_from("<iiii", view, pos)
    _check(qdim == dim and nsubq > 0 and dsub > 0, "a product quantizer has an impossible size")
    return pos + 16 + qdim * KSUB * 4
