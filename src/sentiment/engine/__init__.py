"""Our fastText: the supervised trainer behind `sentiment train` (see trainer.py for why)."""

from sentiment.engine.fasttext_bin import BinModel, read_bin, write_bin
from sentiment.engine.trainer import EngineParams, EpochStats, Snapshot, Trainer

__all__ = ["BinModel", "EngineParams", "EpochStats", "Snapshot", "Trainer", "read_bin", "write_bin"]
