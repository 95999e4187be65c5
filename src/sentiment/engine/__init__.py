"""Our fastText: the supervised trainer behind `sentiment train` (see trainer.py for why), and
`fit`, its library call with early stopping (see fit.py), and `build_predictor`, the compiled
predictor over a model's weights (see predictor.py)."""

from sentiment.engine.fasttext_bin import BinModel, read_bin, write_bin
from sentiment.engine.fit import EarlyStopping, Epoch, FitResult, Listeners, fit
from sentiment.engine.predictor import build_predictor, covers
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
    "build_predictor",
    "covers",
    "fit",
    "read_bin",
    "write_bin",
]
