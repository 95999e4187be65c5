"""engine.fit, on its own and in-process: the epoch loop, early stopping, the best weights,
listeners that stop it, and the same model as the trainer's own loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import sample_splits, small_params
from sentiment.engine import EarlyStopping, Epoch, Listeners, Trainer, fit
from sentiment.errors import DataError


@pytest.fixture(scope="module")
def files(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fit")
    sample_splits(tiny_model_dir, folder, train=slice(4000), validation=slice(20000, 21000))
    return {"train": folder / "train.txt", "validation": folder / "validation.txt"}


def test_fit_is_the_trainer_loop_byte_for_byte(files: dict[str, Path], tmp_path: Path) -> None:
    """fit adds validation and bookkeeping, nothing to the model: the same .bin as the loop."""
    seen: list[Epoch] = []
    result = fit(files["train"], files["validation"], small_params(), on_epoch=seen.append)
    result.trainer.save_bin(tmp_path / "fit.bin")
    trainer = Trainer(small_params())
    trainer.build_vocab(files["train"])
    for epoch in range(4):
        trainer.run_epoch(epoch)
    trainer.save_bin(tmp_path / "loop.bin")
    trainer.close()
    assert (tmp_path / "fit.bin").read_bytes() == (tmp_path / "loop.bin").read_bytes()
    assert [e.epoch for e in seen] == [1, 2, 3, 4] and result.epochs == seen
    assert all(e.validation_accuracy is not None for e in seen)
    assert result.model_epoch == 4 and not result.stopped_early
    assert result.best_validation_accuracy == max(e.validation_accuracy or 0 for e in seen)
    assert result.validation_accuracy == pytest.approx(seen[-1].validation_accuracy)
    assert result.train_examples == 4000 and result.validation_examples == 1000
    assert result.trainer.data is None or not any(f.exists() for f in result.trainer.data.files)


def test_early_stopping_stops_at_patience_and_keeps_the_best_weights(
    files: dict[str, Path],
) -> None:
    """A rate so high that validation accuracy swings: the fit stops `patience` epochs after
    its best one (not before min_epochs) and the model is that epoch's."""
    early = EarlyStopping(patience=1, min_epochs=2)
    result = fit(
        files["train"], files["validation"], small_params(lr=5.0, epochs=30), early_stopping=early
    )
    accuracies = [e.validation_accuracy or 0.0 for e in result.epochs]
    best = int(np.argmax(accuracies)) + 1
    assert result.stopped_early and len(result.epochs) < 30
    assert result.best_epoch == best and result.model_epoch == best
    # Stopped at the first epoch >= min_epochs that is `patience` epochs past the best so far.
    last = len(result.epochs)
    assert last >= early.min_epochs and accuracies[last - 1] <= max(accuracies[: last - 1])
    assert result.validation_accuracy == pytest.approx(max(accuracies))


def test_without_early_stopping_the_model_is_the_last_epochs(files: dict[str, Path]) -> None:
    result = fit(files["train"], files["validation"], small_params(lr=5.0, epochs=6))
    assert len(result.epochs) == 6 and result.model_epoch == 6 and not result.stopped_early
    assert result.validation_accuracy == pytest.approx(result.epochs[-1].validation_accuracy)


def test_a_listener_that_raises_ends_the_fit_and_its_files(
    files: dict[str, Path], tmp_path: Path
) -> None:
    class Prune(Exception):
        pass

    logged: list[str] = []
    vocab: list[int] = []

    def on_epoch(epoch: Epoch) -> None:
        if epoch.epoch == 2:
            raise Prune

    with pytest.raises(Prune):
        fit(
            files["train"],
            files["validation"],
            small_params(epochs=10),
            on_epoch=on_epoch,
            listeners=Listeners(log=logged.append, on_vocab=lambda t: vocab.append(t.nwords)),
            spill_dir=tmp_path,
        )
    assert vocab and vocab[0] > 0
    assert sum(line.startswith("Validation accuracy: ") for line in logged) == 2
    assert list(tmp_path.iterdir()) == []  # the encoded pieces are gone


def test_bad_inputs(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="validation"):
        fit(files["train"], None, small_params(), early_stopping=EarlyStopping())
    other = tmp_path / "other.txt"
    other.write_text("__label__neutral something else\n")
    with pytest.raises(DataError, match="no line with a label the training data has"):
        fit(files["train"], other, small_params())
