"""The trainer: fastText's supervised algorithm, one epoch at a time.

fastText's own library trains all epochs in one call, with no hook between them and no way to
resume; BlazingText's early stopping (validate after each epoch, keep the best weights) needs
exactly that, so the algorithm is re-implemented here: `dictionary` builds the vocabulary and
encodes lines as fastText does, `kernels` does the hogwild SGD in numba, `fasttext_bin` writes
the model in fastText's format, which the fastText library (and SageMaker's BlazingText
container) loads and predicts with identically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from sentiment.engine import kernels
from sentiment.engine.dictionary import (
    Dictionary,
    Encoded,
    build_dictionary,
    encode_chunks,
    encode_texts,
    scan_chunks,
)
from sentiment.engine.fasttext_bin import BinModel, write_bin
from sentiment.errors import DataError, UsageError

Progress = Callable[[int, int], None]  # (tokens done this epoch, tokens per epoch)


@dataclass(frozen=True)
class EngineParams:
    """fastText's names for the training parameters (BlazingText's names map onto these)."""

    dim: int = 100
    lr: float = 0.05
    epochs: int = 5
    min_count: int = 5
    word_ngrams: int = 2
    buckets: int = 2_000_000
    loss: str = "softmax"
    threads: int = 0  # 0: every core numba may use
    seed: int = 0
    lr_update_rate: int = 100

    def __post_init__(self) -> None:
        if self.loss != "softmax":
            raise UsageError(f"loss {self.loss!r} is not supported; use softmax.")


@dataclass
class EpochStats:
    epoch: int  # 1-based
    loss: float
    train_accuracy: float
    words_per_sec: float
    seconds: float
    lr: float  # the learning rate at the end of the epoch


@dataclass
class Snapshot:
    wi: np.ndarray
    wo: np.ndarray
    epoch: int


@dataclass
class Trainer:
    params: EngineParams
    dictionary: Dictionary | None = None
    data: Encoded | None = None
    wi: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    wo: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    epochs_done: int = 0
    _train_sample: Encoded | None = None

    @property
    def threads(self) -> int:
        limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        return max(1, min(self.params.threads or limit, limit))

    @property
    def buckets(self) -> int:
        # fastText has no n-gram buckets when it uses no n-grams.
        return self.params.buckets if self.params.word_ngrams > 1 else 0

    @property
    def nwords(self) -> int:
        return self._dict.nwords

    @property
    def nlabels(self) -> int:
        return self._dict.nlabels

    @property
    def ntokens(self) -> int:
        return self._dict.ntokens

    @property
    def labels(self) -> tuple[str, ...]:
        return self._dict.labels

    @property
    def _dict(self) -> Dictionary:
        if self.dictionary is None:
            raise RuntimeError("build_vocab() first")
        return self.dictionary

    def build_vocab(self, train_path: Path) -> None:
        """Read the training file, build the dictionary, encode every line, initialize weights."""
        # Two passes over the file, each a piece at a time (the dictionary, then the encoding),
        # so that memory holds the encoded corpus and one piece's scan, not the whole scan.
        self.dictionary = build_dictionary(scan_chunks(train_path), self.params.min_count)
        self.data = encode_chunks(
            scan_chunks(train_path),
            self.dictionary,
            self.params.word_ngrams,
            self.buckets,
            ntokens=self.dictionary.ntokens,
        )
        if self.data.labels.size == 0 or self.data.ids.size == 0:
            raise DataError(f"{train_path} has no line with both a label and words.")
        rng = np.random.default_rng(self.params.seed)
        dim = self.params.dim
        rows = self.dictionary.nwords + self.buckets
        # uniform(-1/dim, 1/dim) as fastText, drawn in float32 in place (no float64 copy).
        self.wi = rng.random((rows, dim), dtype=np.float32)
        self.wi *= np.float32(2.0 / dim)
        self.wi -= np.float32(1.0 / dim)
        self.wo = np.zeros((self.dictionary.nlabels, dim), np.float32)
        self._train_sample = _sample(self.data, 200_000)

    def run_epoch(self, epoch: int, progress: Progress | None = None) -> EpochStats:
        """One pass over the training data (epoch is 0-based); returns the epoch's metrics."""
        data = self.data
        if data is None:
            raise RuntimeError("build_vocab() first")
        p = self.params
        per_epoch = data.ntokens
        total = float(per_epoch * p.epochs)
        before = float(per_epoch * epoch)
        started = time.perf_counter()
        n = data.nlines
        # Slices keep the progress bar moving and Ctrl-C responsive; each is still hogwild.
        slices = max(1, min(50, n // 20_000))
        loss = 0.0
        examples = 0
        done = 0
        for s in range(slices):
            first, last = n * s // slices, n * (s + 1) // slices
            part_loss, part_examples, part_tokens = kernels.train_lines(
                self.wi,
                self.wo,
                data.line_ptr,
                data.ids,
                data.label_ptr,
                data.labels,
                data.ntok,
                first,
                last,
                self.threads,
                p.lr,
                before + done,
                total,
                p.seed + epoch * 1009 + s,
            )
            loss += part_loss
            examples += part_examples
            done += part_tokens
            if progress is not None:
                progress(done, per_epoch)
        seconds = time.perf_counter() - started
        self.epochs_done = epoch + 1
        sample = self._train_sample or data
        return EpochStats(
            epoch=epoch + 1,
            loss=loss / max(1, examples),
            train_accuracy=self.accuracy(sample),
            words_per_sec=done / seconds if seconds > 0 else 0.0,
            seconds=seconds,
            lr=p.lr * max(0.0, 1.0 - (before + done) / total),
        )

    def tokenize_file(self, path: Path) -> Encoded:
        """A labelled file encoded with this dictionary (read once, evaluated many times)."""
        return encode_chunks(scan_chunks(path), self._dict, self.params.word_ngrams, self.buckets)

    def accuracy(self, data: Encoded | Path) -> float:
        """Top-1 accuracy (fastText's precision@1) on a labelled file or encoded lines."""
        encoded = self.tokenize_file(data) if isinstance(data, Path) else data
        correct, counted = kernels.count_correct(
            self.wi, self.wo, encoded.line_ptr, encoded.ids, encoded.label_ptr, encoded.labels
        )
        return correct / counted if counted else 0.0

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Label probabilities for tokenized texts (columns in `labels` order), as fastText's predict."""
        encoded = encode_texts(texts, self._dict, self.params.word_ngrams, self.buckets)
        return kernels.predict_probs(self.wi, self.wo, encoded.line_ptr, encoded.ids)

    def snapshot(self) -> Snapshot:
        return Snapshot(self.wi.copy(), self.wo.copy(), self.epochs_done)

    def restore(self, snap: Snapshot) -> None:
        np.copyto(self.wi, snap.wi)
        np.copyto(self.wo, snap.wo)

    def to_bin_model(self) -> BinModel:
        d = self._dict
        return BinModel(
            dim=self.params.dim,
            epoch=self.params.epochs,
            min_count=self.params.min_count,
            word_ngrams=self.params.word_ngrams,
            loss=self.params.loss,
            buckets=self.buckets,
            lr_update_rate=self.params.lr_update_rate,
            words=d.words,
            counts=d.counts,
            types=d.types(),
            ntokens=d.ntokens,
            wi=self.wi,
            wo=self.wo,
        )

    def save_bin(self, path: Path) -> None:
        """Write the model as a fastText .bin (atomically)."""
        write_bin(path, self.to_bin_model())


def _sample(data: Encoded, limit: int) -> Encoded | None:
    """Up to `limit` evenly spread lines, to measure train accuracy each epoch cheaply."""
    if data.nlines <= limit:
        return None
    rows = np.linspace(0, data.nlines - 1, limit).astype(np.int64)
    id_parts = [data.ids[data.line_ptr[r] : data.line_ptr[r + 1]] for r in rows]
    label_parts = [data.labels[data.label_ptr[r] : data.label_ptr[r + 1]] for r in rows]
    line_ptr = np.concatenate([[0], np.cumsum([len(x) for x in id_parts])]).astype(np.int64)
    label_ptr = np.concatenate([[0], np.cumsum([len(x) for x in label_parts])]).astype(np.int64)
    return Encoded(
        line_ptr, np.concatenate(id_parts), label_ptr, np.concatenate(label_parts), data.ntok[rows]
    )
