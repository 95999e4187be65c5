"""Tuning jobs: ranges, trials as training jobs, pruning, resume after an interruption."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from conftest import REPO, run_cli, sample_splits, wait_for_an_epoch
from sentiment.config import Settings
from sentiment.engine import Epoch, EpochStats
from sentiment.errors import UsageError
from sentiment.storage import open_bucket
from sentiment.train.job import StopJob
from sentiment.train.tuning import (
    Range,
    TuningConfig,
    _pruning,
    default_objective,
    parse_range,
    read_tuning,
    run_tuning,
)

FIXED = {"vector_dim": "10", "min_count": "2", "threads": "1", "seed": "1"}


@pytest.fixture(scope="module")
def prepared(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("prepared")
    return sample_splits(tiny_model_dir, folder, train=slice(3000), validation=slice(20000, 21000))


def test_ranges() -> None:
    assert parse_range("learning_rate=0.01:0.5:log") == Range("learning_rate", 0.01, 0.5, True)
    assert parse_range("epochs=5:50:int") == Range("epochs", 5, 50)
    assert parse_range("epochs=5:50") == Range("epochs", 5, 50)
    assert parse_range("word_ngrams=1,2,3") == Range("word_ngrams", choices=(1, 2, 3))
    assert parse_range("early_stopping=True,False").choices == (True, False)
    assert parse_range("epochs=5:50:int").to_text() == "epochs=5:50:int"
    assert parse_range("learning_rate=0.01:0.5:log").grid.__name__ == "grid"
    assert parse_range("word_ngrams=1:3").grid() == (1, 2, 3)
    bad = {
        "epochs": "--range takes name=low:high",
        "epoch=1:5": "Unknown hyperparameter 'epoch'. Did you mean 'epochs'?",
        "epochs=0:5": "epochs must be a positive integer",
        "epochs=5:1": "from low to high",
        "learning_rate=0.1:0.5:int": "is a float",
        "learning_rate=0.1:0.5:cubic": "Bad range",
        "word_ngrams=1,1": "distinct",
        "threads=1:2": "cannot be tuned",
        "min_count=0:5:log": "start above 0",
    }
    for text, message in bad.items():
        with pytest.raises(UsageError, match=message):
            parse_range(text)
    with pytest.raises(UsageError, match="grid strategy needs the values"):
        parse_range("learning_rate=0.1:0.5").grid()
    ranges = (parse_range("epochs=2:4"),)
    with pytest.raises(UsageError, match="given both a --range and a --hp"):
        TuningConfig("t", "v", ranges, fixed={"epochs": "3"})
    with pytest.raises(UsageError, match="at least one --range"):
        TuningConfig("t", "v", ())
    with pytest.raises(UsageError, match="vector_dim must be"):
        TuningConfig("t", "v", ranges, fixed={"vector_dim": "0"})
    config = TuningConfig("t", "v", ranges, fixed=FIXED, max_seconds=60.0)
    assert TuningConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_the_default_objective_is_macro_f1_beyond_two_labels(tmp_path: Path) -> None:
    """Accuracy rewards the majority class: a three-class model is tuned on macro-F1."""
    two, three = tmp_path / "two.txt", tmp_path / "three.txt"
    two.write_text("__label__positive good\n__label__negative bad\n" * 50)
    three.write_text(
        "__label__positive good\n__label__negative bad\n" * 50 + "__label__neutral ok\n"
    )
    assert default_objective(two) == "validation:accuracy"
    assert default_objective(three) == "validation:macro_f1"


def _epoch(n: int, accuracy: float) -> Epoch:
    return Epoch(EpochStats(n, 0.5, 0.9, 1e6, 0.1, 0.05), accuracy, False)


def test_pruning_compares_trials_at_the_same_tenth_of_their_schedule() -> None:
    """Below the median of earlier trials at the same point of the schedule: stopped."""
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    for _ in range(2):  # two 10-epoch trials at 0.80 all along
        trial = study.ask()
        listen = _pruning(trial, "t", 10, [])
        for n in range(1, 11):
            listen(_epoch(n, 0.80))
        study.tell(trial, 0.80)
    # A 20-epoch trial reports at tenths 1, 2, ...: epochs 2, 4, ... Epoch 1 (tenth 0) is
    # warm-up; at epoch 2 (tenth 1) it is compared with the others' epoch 1.
    going = study.ask()
    listen = _pruning(going, "t", 20, [])
    listen(_epoch(1, 0.10))  # warm-up: never judged
    listen(_epoch(2, 0.85))  # above the median at tenth 1: goes on
    listen(_epoch(3, 0.10))  # still tenth 1, already reported: not judged again
    study.tell(going, state=optuna.trial.TrialState.FAIL)
    trial = study.ask()
    accuracies: list[float] = []
    listen = _pruning(trial, "t", 20, accuracies)
    listen(_epoch(1, 0.10))
    with pytest.raises(StopJob, match="Pruned by tuning job t after epoch 2"):
        listen(_epoch(2, 0.75))  # tenth 1, below 0.80
    assert accuracies == [0.1, 0.75]
    # The last epoch is the trial's result, never a reason to prune it.
    last = study.ask()
    listen = _pruning(last, "t", 10, [])
    for n in range(1, 10):
        listen(_epoch(n, 0.9))
    listen(_epoch(10, 0.0))
    # Past the time budget a running trial stops at its next epoch (but for its last).
    late = study.ask()
    with pytest.raises(StopJob, match="time budget is spent"):
        _pruning(late, "t", 10, [], deadline=time.monotonic() - 1)(_epoch(1, 0.9))
    _pruning(late, "t", 10, [], deadline=time.monotonic() - 1)(_epoch(10, 0.9))


def test_a_tuning_job_runs_trials_as_training_jobs(prepared: Path, tmp_path: Path) -> None:
    bucket = open_bucket(tmp_path / "bucket")
    config = TuningConfig(
        str(prepared / "train.txt"),
        str(prepared / "validation.txt"),
        (parse_range("learning_rate=0.05:0.5:log"), parse_range("epochs=2:3")),
        fixed=FIXED,
        max_jobs=4,
    )
    record = run_tuning(config, bucket=bucket, name="tj", settings=Settings.load())
    assert record["status"] == "Completed" and record["trials_finished"] == 4
    trials = record["trials"]
    assert [t["job"] for t in trials] == ["tj-001", "tj-002", "tj-003", "tj-004"]
    best = record["best"]
    completed = [t for t in trials if t["state"] == "COMPLETE"]
    assert best["objective"] == max(t["objective"] for t in completed)
    job = json.loads((tmp_path / "bucket" / best["job"] / "job.json").read_text())
    assert job["tuning_job"] == "tj" and job["status"] == "Completed"
    assert job["final_metrics"]["validation_accuracy"] == best["objective"]
    assert job["hyperparameters"]["epochs"] == best["params"]["epochs"]
    assert (tmp_path / "bucket" / "tj" / "plots" / "tuning_objective.png").is_file()
    with pytest.raises(UsageError, match="has completed"):
        run_tuning(config, bucket=bucket, name="tj", settings=Settings.load())


def _tune(bucket: Path, prepared: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sentiment", "--bucket", str(bucket), "tune", "--input", str(prepared),
         "--range", "learning_rate=0.05:0.5:log", "--range", "epochs=3:6:int", "--range", "word_ngrams=1,2",
         *[f"--hp={k}={v}" for k, v in FIXED.items()], "--max-jobs", "4", "--tuning-job-name", "resumable"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


def test_an_interrupted_tuning_job_resumes(prepared: Path, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    proc = _tune(bucket, prepared)
    # Ctrl-C in the middle of the second trial's training job.
    second = bucket / "resumable-002" / "job.json"
    wait_for_an_epoch(second)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Tuning job resumable stopped after 1 finished trial" in stderr
    assert "--tuning-job-name resumable" in stderr
    stopped = read_tuning(open_bucket(bucket), "resumable")
    assert stopped["status"] == "Stopped" and stopped["trials_finished"] == 1
    assert json.loads(second.read_text())["status"] == "Stopped"
    # The same command again: the search goes on from where it was.
    proc = _tune(bucket, prepared)
    out, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert out.startswith("resumable Completed: best trial")
    record = read_tuning(open_bucket(bucket), "resumable")
    states = [t["state"] for t in record["trials"]]
    assert states[0] == "COMPLETE" and states[1] == "FAIL"  # the interrupted one
    assert len(states) == 5 and record["trials_finished"] == 4
    with sqlite3.connect(bucket / "resumable" / "tuning.db") as db:  # a real database
        assert db.execute("select count(*) from trials").fetchone() == (5,)
    # Another configuration under the same name is refused, not mixed in.
    again = run_cli(
        "--bucket", str(bucket), "tune", "--input", str(prepared), "--range", "epochs=2:3",
        "--tuning-job-name", "resumable",
    )  # fmt: skip
    assert again.returncode == 2 and "has completed" in again.stderr
    described = run_cli(
        "--bucket", str(bucket), "tuning", "describe", "resumable", env={"COLUMNS": "200"}
    )
    assert described.returncode == 0 and "resumable-003" in described.stdout
    assert "FAIL" in described.stdout and "best: trial" in described.stdout
    listed = run_cli("--bucket", str(bucket), "jobs", "list", env={"COLUMNS": "200"})
    assert "(tuning job resumable)" in listed.stdout
