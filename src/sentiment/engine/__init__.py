"""Our fastText: the supervised trainer behind `sentiment train` (see trainer.py for why), and
`fit`, its library call with early stopping (see fit.py)."""

from sentiment.engine.fasttext_bin import BinModel, read_bin, write_bin
from sentiment.engine.fit import EarlyStopping, Epoch, FitResult, Listeners, fit
from sentiment.engine.trainer import EngineParams, EpochStats, Snapshot, Trainer

__all__ = [
    "BinModel",
    "EarlyStopping",
    "EngineParams",
    "Epoch",
    "EpochStats",
    "FitResult",
    "Listeners",
    "Snapshot",
    "Trainer",
    "fit",
    "read_bin",
    "write_bin",
]
