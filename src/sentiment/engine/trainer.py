"""The trainer: fastText's supervised algorithm, one epoch at a time.

fastText's own library trains all epochs in one call, with no hook between them and no way to
resume; BlazingText's early stopping (validate after each epoch, keep the best weights) needs
exactly that, so the algorithm is re-implemented here: `dictionary` builds the vocabulary and
encodes lines as fastText does, `kernels` does the hogwild SGD (compiled C, `_core.c`),
`fasttext_bin` writes the model in fastText's format, which the fastText library (and SageMaker's BlazingText
container) loads and predicts with identically.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sentiment.engine import kernels
from sentiment.engine.dictionary import (
    Dictionary,
    Encoded,
    build_dictionary,
    encode,
    encode_chunks,
    join_encoded,
    scan_chunks,
)
from sentiment.engine.fasttext_bin import BinModel, write_bin
from sentiment.engine.predictor import build_predictor
from sentiment.errors import DataError, UsageError

Progress = Callable[[int, int], None]  # (tokens done this epoch, tokens per epoch)

# Per-epoch train accuracy is measured on lines holding about this many ids (4 MB).
TRAIN_SAMPLE_IDS = 1_000_000


@dataclass(frozen=True)
class EngineParams:
    """fastText's names for the training parameters. No defaults here: a training job builds
    them from the hyperparameter table (`sentiment.train.hyperparams`), the one place they are
    defined, and a caller of the engine alone says what it wants."""

    dim: int
    lr: float
    epochs: int
    min_count: int
    word_ngrams: int
    buckets: int
    loss: str
    threads: int  # 0: every core this process may use
    seed: int
    lr_update_rate: int = 100  # fastText's; written to the .bin, not used by the trainer

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


class Pieces:
    """The encoded training file, written to a temporary folder a piece at a time and read back
    one piece at a time each epoch, as fastText re-reads its input file: memory holds one piece
    (1 MB of text), not the corpus (8 bytes a token with bigrams: 400 MB at 51M tokens)."""

    def __init__(self, parts: Iterator[Encoded], folder: Path | None = None) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="sentiment-train-", dir=folder)
        self.files: list[Path] = []
        self.lines: list[int] = []
        self.ntokens = 0
        self.nlabels = 0
        self.nids = 0
        for i, part in enumerate(parts):
            path = Path(self._folder.name) / f"{i:06d}.npz"
            np.savez(
                path,
                line_ptr=part.line_ptr,
                ids=part.ids,
                label_ptr=part.label_ptr,
                labels=part.labels,
                ntok=part.ntok,
            )
            self.files.append(path)
            self.lines.append(part.nlines)
            self.ntokens += part.ntokens
            self.nlabels += int(part.labels.size)
            self.nids += int(part.ids.size)

    @property
    def nlines(self) -> int:
        return sum(self.lines)

    def __iter__(self) -> Iterator[Encoded]:
        for path in self.files:
            yield self.load(path)

    @staticmethod
    def load(path: Path) -> Encoded:
        with np.load(path) as z:
            return Encoded(z["line_ptr"], z["ids"], z["label_ptr"], z["labels"], z["ntok"])

    def sample(self, max_ids: int) -> Encoded:
        """Evenly spread lines holding about `max_ids` ids in all, to measure train accuracy
        each epoch cheaply (the job's final train accuracy reads every piece)."""
        total = self.nlines
        count = min(total, max(1, int(max_ids * total / max(1, self.nids))))
        rows = np.unique(np.linspace(0, max(0, total - 1), count).astype(np.int64))
        picked = []
        start = 0
        for part, n in zip(self, self.lines, strict=True):
            local = rows[(rows >= start) & (rows < start + n)] - start
            if local.size:
                picked.append(_select(part, local))
            start += n
        return join_encoded(picked)

    def close(self) -> None:
        self._folder.cleanup()


@dataclass
class Trainer:
    params: EngineParams
    dictionary: Dictionary | None = None
    data: Pieces | None = None
    wi: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    wo: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    epochs_done: int = 0
    _train_sample: Encoded | None = None
    spill_dir: Path | None = None  # where the encoded pieces go (None: the system's temp folder)

    @property
    def threads(self) -> int:
        return max(1, min(self.params.threads or kernels.cores(), kernels.MAX_THREADS))

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
        if self.dictionary.nlabels < 2:
            # fastText would train it, into a model that answers this label with p = 1.0 for
            # every text: useless, and it looks confident.
            [label] = self.dictionary.labels
            raise DataError(
                f"{train_path} has one label only ({label}): a model trained on it would "
                "answer it with probability 1.0 for every text.",
                hint="Training needs at least two labels: check that the input holds reviews "
                "of every class (not only 5-star ones, say) and the prepare --policy.",
            )
        if self.data is not None:
            self.data.close()
        dictionary, ngrams, buckets = self.dictionary, self.params.word_ngrams, self.buckets
        self.data = Pieces(
            (encode(piece, dictionary, ngrams, buckets) for piece in scan_chunks(train_path)),
            self.spill_dir,
        )
        if self.data.nlabels == 0 or self.data.nids == 0:
            raise DataError(f"{train_path} has no line with both a label and words.")
        rng = np.random.default_rng(self.params.seed)
        dim = self.params.dim
        rows = self.dictionary.nwords + self.buckets
        # uniform(-1/dim, 1/dim) as fastText, drawn in float32 in place (no float64 copy).
        self.wi = rng.random((rows, dim), dtype=np.float32)
        self.wi *= np.float32(2.0 / dim)
        self.wi -= np.float32(1.0 / dim)
        self.wo = np.zeros((self.dictionary.nlabels, dim), np.float32)
        self._train_sample = self.data.sample(TRAIN_SAMPLE_IDS)

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
        loss = 0.0
        examples = 0
        done = 0
        # As fastText: each thread walks its own contiguous share of the file. The pieces are
        # dealt out in `threads` runs; step i trains piece i of every run at once (one piece a
        # thread). Between steps the progress bar moves and Ctrl-C is seen.
        # (A file of fewer pieces than threads: its lines are split evenly between them.)
        pieces = list(data.files)
        runs = min(self.threads, len(pieces))
        per_thread = -(-len(pieces) // runs)
        for step in range(per_thread):
            group = [
                data.load(pieces[t * per_thread + step])
                for t in range(runs)
                if t * per_thread + step < len(pieces)
            ]
            joined = join_encoded(group)
            if runs < self.threads:
                n = joined.nlines
                bounds = np.array([n * t // self.threads for t in range(self.threads + 1)])
            else:
                bounds = np.cumsum([0] + [g.nlines for g in group])
            bounds = bounds.astype(np.int64)
            part_loss, part_examples, part_tokens = kernels.train_lines(
                self.wi,
                self.wo,
                joined.line_ptr,
                joined.ids,
                joined.label_ptr,
                joined.labels,
                joined.ntok,
                bounds,
                p.lr,
                before + done,
                total,
                p.seed + epoch * 1009 + step,
            )
            loss += part_loss
            examples += part_examples
            done += part_tokens
            if progress is not None:
                progress(done, per_epoch)
        seconds = time.perf_counter() - started
        self.epochs_done = epoch + 1
        sample = self._train_sample
        assert sample is not None
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

    def accuracy(self, data: Encoded | Pieces | Path) -> float:
        """Top-1 accuracy (fastText's precision@1) on a labelled file or encoded lines."""
        correct = counted = 0
        parts: Iterable[Encoded]
        if isinstance(data, Path):
            ngrams, buckets = self.params.word_ngrams, self.buckets
            parts = (encode(p, self._dict, ngrams, buckets) for p in scan_chunks(data))
        else:
            parts = [data] if isinstance(data, Encoded) else data
        for part in parts:
            c, n = kernels.count_correct(
                self.wi, self.wo, part.line_ptr, part.ids, part.label_ptr, part.labels, self.threads
            )
            correct += c
            counted += n
        return correct / counted if counted else 0.0

    def close(self) -> None:
        """Remove the encoded pieces from disk (the trainer can no longer run epochs)."""
        if self.data is not None:
            self.data.close()

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Label probabilities for tokenized texts (columns in `labels` order): fastText's
        predict, by the Predictor that serves models (`_core.c`), over the current weights."""
        d = self._dict
        predictor = build_predictor(self.to_bin_model())
        out = np.zeros((len(texts), d.nlabels), np.float32)
        for row, text in enumerate(texts):
            ids, probs = predictor.top(text.replace("\n", " ").encode(), d.nlabels)
            out[row, list(ids)] = probs
        return out

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


def _select(data: Encoded, rows: np.ndarray) -> Encoded:
    """The given lines of encoded data."""
    ids = [data.ids[data.line_ptr[r] : data.line_ptr[r + 1]] for r in rows]
    labels = [data.labels[data.label_ptr[r] : data.label_ptr[r + 1]] for r in rows]
    return Encoded(
        np.concatenate([[0], np.cumsum([len(x) for x in ids])]).astype(np.int64),
        np.concatenate(ids).astype(np.int32),
        np.concatenate([[0], np.cumsum([len(x) for x in labels])]).astype(np.int64),
        np.concatenate(labels).astype(np.int32),
        data.ntok[rows],
    )
