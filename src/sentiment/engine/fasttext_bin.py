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
from sentiment.storage import atomic_path

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


def read_bin(path: Path, *, mapped: bool = False) -> BinModel:
    """Read a fastText supervised .bin (ours or one trained by fastText or SageMaker BlazingText).

    With `mapped`, the weight matrices are read-only views of the file mapped into memory, so
    processes serving the same file share one copy of them (the page cache's); otherwise they
    are arrays of their own."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise EOFError("the file is empty")
            view = memoryview(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ))
        return _read(view, path, mapped)
    except (struct.error, ValueError, EOFError, OSError) as err:
        raise ModelError(f"{path} is not a readable fastText model: {err}.") from None


def _read(view: memoryview, path: Path, mapped: bool) -> BinModel:
    magic, version = struct.unpack_from("<ii", view, 0)
    if magic != MAGIC or version > VERSION:
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
    size, _nwords, _nlabels, ntokens, prune = struct.unpack_from("<iiiqq", view, 64)
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
    if prune > 0:
        pos += prune * 8
    if view[pos] != 0:
        raise ModelError(f"{path} is a quantized model (.ftz); give the full .bin.")
    wi, pos = _read_matrix(view, pos + 1, mapped)
    wo, pos = _read_matrix(view, pos + 1, mapped)
    names = {v: k for k, v in LOSS.items()}
    return BinModel(
        dim=dim,
        epoch=epoch,
        min_count=min_count,
        word_ngrams=word_ngrams,
        loss=names.get(loss, "softmax"),
        buckets=buckets,
        lr_update_rate=lr_update_rate,
        words=words,
        counts=np.array(counts, np.int64),
        types=np.array(types, np.int8),
        ntokens=ntokens,
        wi=wi,
        wo=wo,
        minn=minn,
        maxn=maxn,
    )


def _read_matrix(view: memoryview, pos: int, mapped: bool) -> tuple[np.ndarray, int]:
    rows, cols = struct.unpack_from("<qq", view, pos)
    pos += 16
    if rows < 0 or cols < 0 or pos + rows * cols * 4 > len(view):
        raise EOFError("the file ends inside a matrix")
    data = np.frombuffer(view, dtype="<f4", count=rows * cols, offset=pos).reshape(rows, cols)
    return (data if mapped else data.astype(np.float32)), pos + rows * cols * 4
