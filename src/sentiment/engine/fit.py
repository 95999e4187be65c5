"""`fit`: the engine's library call, scikit-learn style, with BlazingText's early stopping.

The caller gives the data, the parameters and listeners; the estimator owns the epoch loop,
the per-epoch validation, early stopping and the best weights. A listener (`on_epoch`) sees
each epoch's figures and may end the fit by raising (a tuner prunes a trial that way); the
encoded pieces on disk are removed whatever ends it.

Early stopping is BlazingText's: validation accuracy is measured after every epoch; from
`min_epochs` on, the fit stops once `patience` epochs in a row have not beaten the best one,
and the model kept is the best epoch's ("Storing best weights"). Without early stopping the
model is the last epoch's, as in fastText. The log lines are BlazingText's
(`Validation accuracy: 0.922196`, `##### Alpha: ... #####`), so metric definitions written for
SageMaker's logs work unchanged on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sentiment.engine.dictionary import Encoded
from sentiment.engine.trainer import EngineParams, EpochStats, Pieces, Progress, Snapshot, Trainer
from sentiment.errors import DataError

Log = Callable[[str], None]


@dataclass(frozen=True)
class EarlyStopping:
    """BlazingText's early stopping: stop after `patience` epochs without a better validation
    accuracy, never before `min_epochs`, and keep the best epoch's weights."""

    patience: int = 4
    min_epochs: int = 5


@dataclass(frozen=True)
class Epoch:
    """One epoch's figures: the trainer's, and validation accuracy when there is a validation set."""

    stats: EpochStats
    validation_accuracy: float | None
    improved: bool  # the best validation accuracy so far (always False without validation)

    @property
    def epoch(self) -> int:
        return self.stats.epoch


@dataclass
class FitResult:
    """A fitted trainer (its weights those of `model_epoch`) and how it got there."""

    trainer: Trainer
    epochs: list[Epoch] = field(default_factory=list)
    best_epoch: int | None = None
    model_epoch: int = 0
    stopped_early: bool = False
    validation_seconds: float = 0.0
    train_accuracy: float | None = None  # of the kept weights, on the whole training data
    validation_accuracy: float | None = None  # of the kept weights
    train_examples: int = 0
    validation_examples: int = 0

    @property
    def best_validation_accuracy(self) -> float | None:
        values = [e.validation_accuracy for e in self.epochs if e.validation_accuracy is not None]
        return max(values) if values else None


@dataclass(frozen=True)
class Listeners:
    """What a caller hears during a fit; every one optional."""

    log: Log | None = None  # BlazingText's log lines
    on_vocab: Callable[[Trainer], None] | None = None  # the dictionary is built
    on_progress: Callable[[int, int, int], None] | None = None  # (epoch 0-based, done, total)


def fit(
    train: Path,
    validation: Path | None,
    params: EngineParams,
    *,
    early_stopping: EarlyStopping | None = None,
    on_epoch: Callable[[Epoch], None] | None = None,
    listeners: Listeners = Listeners(),
    spill_dir: Path | None = None,
) -> FitResult:
    """Train on `train` for `params.epochs` epochs (fewer when early stopping stops it),
    validating on `validation` after every epoch, and return the fitted trainer and its figures.

    Raises DataError for a training file of fewer than two labels or a validation file with no
    line of a known label; whatever `on_epoch` raises ends the fit and propagates.
    """
    if early_stopping is not None and validation is None:
        raise ValueError("early stopping needs a validation file")
    log = listeners.log or _silent
    trainer = Trainer(params, spill_dir=spill_dir)
    try:
        return _fit(trainer, train, validation, early_stopping, on_epoch, listeners, log)
    finally:
        trainer.close()


def _fit(
    trainer: Trainer,
    train: Path,
    validation: Path | None,
    early: EarlyStopping | None,
    on_epoch: Callable[[Epoch], None] | None,
    listeners: Listeners,
    log: Log,
) -> FitResult:
    log("Running single machine CPU BlazingText-compatible training using supervised mode.")
    log(f"Number of threads: {trainer.threads}")
    log(f"Processing {train} . File size: {train.stat().st_size / 2**20:.2f} MB")
    if validation is not None:
        log(f"Processing {validation} . File size: {validation.stat().st_size / 2**20:.2f} MB")
    trainer.build_vocab(train)
    log(f"Read {trainer.ntokens // 1_000_000}M words")
    log(f"Number of words:  {trainer.nwords}")
    log(f"Number of labels: {trainer.nlabels}")
    valid = _validation_data(trainer, validation, log) if validation is not None else None
    if listeners.on_vocab is not None:
        listeners.on_vocab(trainer)
    result = FitResult(trainer)
    _epochs(trainer, valid, early, on_epoch, listeners, log, result)
    _final_metrics(trainer, valid, log, result)
    return result


def _validation_data(trainer: Trainer, validation: Path, log: Log) -> Encoded:
    log(f"Loading validation data from {validation}")
    valid = trainer.tokenize_file(validation)
    if valid.nlines == 0 or valid.labels.size == 0:
        raise DataError(
            f"The validation file {validation} has no line with a label the training "
            f"data has ({', '.join(trainer.labels)}).",
            hint="Give the validation.txt that prepare wrote with this train.txt.",
        )
    log("Loaded validation data.")
    return valid


def _epochs(
    trainer: Trainer,
    valid: Encoded | None,
    early: EarlyStopping | None,
    on_epoch: Callable[[Epoch], None] | None,
    listeners: Listeners,
    log: Log,
    result: FitResult,
) -> None:
    epochs = trainer.params.epochs
    best_accuracy, since_best = -1.0, 0
    best: Snapshot | None = None
    log("-------------- Start training ------------------")
    for epoch in range(epochs):
        stats = trainer.run_epoch(epoch, progress=_progress(listeners, epoch))
        log(
            f"##### Alpha: {stats.lr:.4f}  Progress: {100.0 * (epoch + 1) / epochs:.2f}%  "
            f"Million Words/sec: {stats.words_per_sec / 1e6:.2f} #####"
        )
        log(f"-------------- End of epoch: {stats.epoch}")
        log(f"Train accuracy: {stats.train_accuracy:.6f}  Loss: {stats.loss:.6f}")
        accuracy, improved = None, False
        if valid is not None:
            clock = time.monotonic()
            log(f"Using {trainer.threads} threads for prediction!")
            accuracy = trainer.accuracy(valid)
            log(f"Validation accuracy: {accuracy:.6f}")
            if accuracy > best_accuracy:
                best_accuracy, since_best, improved = accuracy, 0, True
                result.best_epoch = stats.epoch
                if early is not None:
                    log("Validation accuracy improved! Storing best weights...")
                    best = None  # free the old copy before taking the new one
                    best = trainer.snapshot()
            else:
                since_best += 1
                log(f"Validation accuracy has not improved for last {since_best} epochs.")
            result.validation_seconds += time.monotonic() - clock
        entry = Epoch(stats, accuracy, improved)
        result.epochs.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
        if early is not None and stats.epoch >= early.min_epochs and since_best >= early.patience:
            log("Reached patience. Terminating training.")
            log(f"Stopped after epoch {stats.epoch}; best epoch {result.best_epoch}.")
            result.stopped_early = True
            break
    result.model_epoch = len(result.epochs)
    if best is not None and result.best_epoch != result.model_epoch:
        log(f"Restoring the best weights (epoch {result.best_epoch}).")
        trainer.restore(best)
        result.model_epoch = best.epoch


def _progress(listeners: Listeners, epoch: int) -> Progress | None:
    hook = listeners.on_progress
    if hook is None:
        return None

    def progress(done: int, total: int) -> None:
        hook(epoch, done, total)

    return progress


def _final_metrics(trainer: Trainer, valid: Encoded | None, log: Log, result: FitResult) -> None:
    seconds = sum(e.stats.seconds for e in result.epochs)
    log("Training finished.")
    log(
        "Average throughput in Million words/sec: "
        f"{trainer.ntokens * len(result.epochs) / max(seconds, 1e-9) / 1e6:.2f}"
    )
    if trainer.data is not None:
        result.train_accuracy, result.train_examples = _scored(trainer, trainer.data, "train", log)
    if valid is not None:
        result.validation_accuracy, result.validation_examples = _scored(
            trainer, valid, "validation", log
        )


def _scored(trainer: Trainer, data: Encoded | Pieces, channel: str, log: Log) -> tuple[float, int]:
    """The accuracy on a channel and its number of examples, logged as BlazingText logs them."""
    accuracy = trainer.accuracy(data)
    log("")
    log(f"#{channel}_accuracy: {accuracy:.4f}")
    log(f"Number of {channel} examples: {data.nlines}")
    return accuracy, data.nlines


def _silent(line: str) -> None:
    pass
