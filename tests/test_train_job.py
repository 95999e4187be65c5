"""Training jobs through the real CLI: records, early stopping, archives, stops, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fasttext
import pytest

from conftest import REPO, run_cli, sample_splits, wait_for_an_epoch
from sentiment.errors import JobFailed
from sentiment.model import load_model
from sentiment.storage import open_bucket
from sentiment.text import DEFAULT_CLEANING


@pytest.fixture(scope="module")
def prepared(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared folder as `sentiment prepare` writes it (files + manifest), from the shared sample."""
    folder = tmp_path_factory.mktemp("prepared")
    sample_splits(tiny_model_dir, folder, train=slice(8000), validation=slice(20000, 22000))
    manifest = {
        "policy": "binary",
        "labels": ["negative", "positive"],
        "cleaning": DEFAULT_CLEANING.to_dict()
        | {"include_title": True, "title_weight": 1, "min_tokens": 1, "dedupe": True},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _cli(*args: str, bucket: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("--bucket", str(bucket), *args)


@dataclass(frozen=True)
class TrainedJob:
    bucket: Path
    result: subprocess.CompletedProcess[str]
    record: dict[str, Any]


@pytest.fixture(scope="module")
def job_a(prepared: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedJob:
    """One training job, run once for the tests that read what it wrote (read-only)."""
    bucket = tmp_path_factory.mktemp("job-a") / "bucket"
    result = _cli(
        "train",
        "--input",
        str(prepared),
        "--job-name",
        "job-a",
        "--hp",
        "epochs=3",
        "--hp",
        "vector_dim=10",
        "--hp",
        "min_count=2",
        bucket=bucket,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((bucket / "job-a" / "job.json").read_text())
    return TrainedJob(bucket, result, record)


def test_train_prints_blazingtexts_lines(job_a: TrainedJob) -> None:
    stdout, stderr = job_a.result.stdout, job_a.result.stderr
    assert stdout.startswith("job-a Completed validation accuracy 0.")
    # BlazingText's metric lines, as SageMaker metric definitions scrape them.
    assert re.search(r"^#train_accuracy: \d\.\d{4}$", stderr, re.M)
    assert re.search(r"^#validation_accuracy: \d\.\d{4}$", stderr, re.M)
    assert len(re.findall(r"^Validation accuracy: \d\.\d{6}$", stderr, re.M)) == 3
    assert "Million Words/sec" in stderr


def test_train_writes_a_sagemaker_archive_with_calibration(job_a: TrainedJob) -> None:
    archive = job_a.bucket / "job-a" / "output" / "model.tar.gz"
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [
            "calibration.json",
            "model.bin",
            "preprocessing.json",
        ]  # model.bin at the root; calibration.json fitted on the validation channel
    calibration = job_a.record["model"]["calibration"]
    assert calibration["labels"] == ["positive", "negative"] and calibration["temperature"] > 0
    assert calibration["inputs"] == "log"  # fitted on the exact log-probabilities
    assert calibration["stats"]["nll_after"] <= calibration["stats"]["nll_before"]
    assert re.search(
        r"^Calibration \(length, T=[\d.]+\) on \d+ validation", job_a.result.stderr, re.M
    )


def test_the_job_record_says_what_was_trained_and_how(job_a: TrainedJob) -> None:
    record = job_a.record
    assert record["status"] == "Completed" and record["failure_reason"] is None
    assert record["hyperparameters"]["epochs"] == "3"
    assert record["hyperparameters"]["learning_rate"] == "0.05"
    assert record["extras"] == {"threads": 0, "seed": 0, "loss": "softmax"}
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]
    assert all(e["validation_accuracy"] and e["words_per_sec"] > 0 for e in record["epochs"])
    assert record["inputs"]["train"]["sha256"] and record["inputs"]["validation"]["bytes"] > 0
    assert record["model"]["key"] == "job-a/output/model.tar.gz"
    assert record["ended"] >= record["started"]


def test_the_job_record_lists_labels_in_fasttexts_order(job_a: TrainedJob, prepared: Path) -> None:
    # fastText's dictionary order: the most frequent label first.
    counts = Counter(line.split()[0] for line in (prepared / "train.txt").read_text().splitlines())
    assert counts.most_common(1)[0][1] > min(counts.values())  # the order is decided by counts
    assert job_a.record["dictionary"]["labels"] == [label for label, _ in counts.most_common()]
    assert job_a.record["dictionary"]["nlabels"] == 2


def test_a_trained_job_is_served_by_name(job_a: TrainedJob, tmp_path: Path) -> None:
    # The model is served through the one inference path, with the preprocessing it was trained with.
    model = load_model("job-a", bucket=open_bucket(job_a.bucket), cache_dir=tmp_path / "cache")
    assert model.preprocessing.source == "sidecar" and model.preprocessing.policy == "binary"
    assert model.predict(["Great, works perfectly, love it"])[0].labels == ("__label__positive",)


def test_jobs_list_and_describe(job_a: TrainedJob) -> None:
    bucket = job_a.bucket
    listed = _cli("jobs", "list", bucket=bucket)
    assert listed.returncode == 0 and "job-a" in listed.stdout and "Completed" in listed.stdout
    described = _cli("jobs", "describe", "job-a", "--json", bucket=bucket)
    assert json.loads(described.stdout)["name"] == "job-a"
    pretty = _cli("jobs", "describe", "job-a", bucket=bucket)
    assert pretty.returncode == 0 and "hyperparameters: mode=supervised epochs=3" in pretty.stdout
    assert "best epoch" in pretty.stdout and "model: job-a/output/model.tar.gz" in pretty.stdout
    assert _cli("jobs", "describe", "nope", bucket=bucket).returncode == 3


def test_job_names_are_unique(job_a: TrainedJob, prepared: Path) -> None:
    before = (job_a.bucket / "job-a" / "job.json").read_bytes()
    again = _cli("train", "--input", str(prepared), "--job-name", "job-a", bucket=job_a.bucket)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert (job_a.bucket / "job-a" / "job.json").read_bytes() == before


def test_early_stopping_keeps_the_best_weights(prepared: Path, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    args = [
        "early_stopping=True",
        "epochs=40",
        "min_epochs=1",
        "patience=2",
        "learning_rate=0.5",
        "vector_dim=10",
        "min_count=1",
        "threads=1",
    ]
    result = _cli(
        "train",
        "--input",
        str(prepared),
        "--job-name",
        "es",
        *[part for a in args for part in ("--hp", a)],
        bucket=bucket,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads((bucket / "es" / "job.json").read_text())
    epochs = record["epochs"]
    assert record["stopped_early"] is True and len(epochs) < 40
    assert (
        "Reached patience. Terminating training." in result.stderr
        and "Storing best weights" in result.stderr
    )
    best = max(epochs, key=lambda e: e["validation_accuracy"])
    assert record["best_epoch"] == best["epoch"]
    assert all(
        e["validation_accuracy"] <= best["validation_accuracy"] for e in epochs[best["epoch"] :]
    )
    assert len(epochs) - best["epoch"] == 2  # stopped after `patience` epochs without improvement
    # The archived model is the best epoch's, not the last one's: the fastText library agrees.
    model = load_model(bucket / "es" / "output" / "model.tar.gz", cache_dir=tmp_path / "cache")
    precision = fasttext.load_model(str(model.path)).test(str(prepared / "validation.txt"))[1]
    assert precision == pytest.approx(best["validation_accuracy"], abs=1e-6)
    assert record["final_metrics"]["validation_accuracy"] == pytest.approx(
        best["validation_accuracy"], abs=1e-6
    )


def test_input_errors(prepared: Path, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    no_valid = _cli(
        "train",
        "--train",
        str(prepared / "train.txt"),
        "--hp",
        "early_stopping=true",
        bucket=bucket,
    )
    assert (
        no_valid.returncode == 2
        and "early_stopping=True needs a validation channel" in no_valid.stderr
    )
    unknown = _cli("train", "--input", str(prepared), "--hp", "epoch=3", bucket=bucket)
    assert (
        unknown.returncode == 2
        and "Unknown hyperparameter 'epoch'" in unknown.stderr
        and "Did you mean 'epochs'?" in unknown.stderr
        and "extras of this trainer: threads, seed, loss" in unknown.stderr
    )
    missing = _cli("train", "--train", str(tmp_path / "none.txt"), bucket=bucket)
    assert missing.returncode == 3 and "No train file at" in missing.stderr
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    failed = _cli("train", "--train", str(empty), "--job-name", "empty-job", bucket=bucket)
    assert failed.returncode == 4 and "Error: The training file is empty." in failed.stderr
    record = json.loads((bucket / "empty-job" / "job.json").read_text())
    assert record["status"] == "Failed" and "empty" in record["failure_reason"]
    assert not (bucket / "empty-job" / "output").exists()
    bad_name = _cli("train", "--input", str(prepared), "--job-name", "bad name!", bucket=bucket)
    assert bad_name.returncode == 2 and "Invalid job name" in bad_name.stderr
    for result in (no_valid, unknown, missing, failed, bad_name):
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_job_is_recorded_and_leaves_no_model(
    prepared: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    bucket = tmp_path / "bucket"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentiment", "--bucket", str(bucket), "train", "--input", str(prepared), "--job-name", "long",
         "--hp", "epochs=100000", "--hp", "vector_dim=10", "--hp", "min_count=1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=os.environ.copy(),
    )  # fmt: skip
    record_path = bucket / "long" / "job.json"
    wait_for_an_epoch(record_path)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped; no model was written" in stderr
    record = json.loads(record_path.read_text())
    assert record["status"] == "Stopped" and record["ended"]
    assert not (bucket / "long" / "output" / "model.tar.gz").exists()
    assert not list((bucket / "long").rglob("*.tar.gz*"))


def test_one_label_is_refused_before_training(prepared: Path, tmp_path: Path) -> None:
    """Issue 14.9: one label trained a model that answered it with p = 1.0 for everything."""
    bucket = tmp_path / "bucket"
    lines = (prepared / "train.txt").read_text().splitlines()
    single = tmp_path / "train.txt"
    single.write_text("\n".join(line for line in lines if line.startswith("__label__positive")))
    result = _cli("train", "--train", str(single), "--job-name", "one-label", bucket=bucket)
    assert result.returncode == 4 and "Traceback" not in result.stderr
    assert "has one label only (__label__positive)" in result.stderr
    assert "at least two labels" in result.stderr
    assert "Start training" not in result.stderr  # refused before the first epoch
    record = json.loads((bucket / "one-label" / "job.json").read_text())
    assert record["status"] == "Failed" and "one label only" in record["failure_reason"]
    assert record["epochs"] == [] and not (bucket / "one-label" / "output").exists()
    assert [p.name for p in (bucket / "one-label").iterdir()] == ["job.json"]


def _start(
    bucket: Path, name: str, prepared: Path, env: dict[str, str], *hp: str
) -> subprocess.Popen[bytes]:
    pairs = [part for pair in hp for part in ("--hp", pair)]
    return subprocess.Popen(
        [sys.executable, "-m", "sentiment", "--bucket", str(bucket), "train", "--input",
         str(prepared), "--job-name", name, *pairs],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=env,
    )  # fmt: skip


def _wait_for(found: Callable[[], object], proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 120
    while not found():
        assert proc.poll() is None, f"the job ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after 120 s"
        time.sleep(0.005)


def _killed_job_answers_failed(bucket: Path, name: str, cache: Path) -> None:
    """Loaded by name or described, a killed job is Failed (its record still says InProgress)."""
    assert json.loads((bucket / name / "job.json").read_text())["status"] == "InProgress"
    described = _cli("jobs", "describe", name, "--json", bucket=bucket)
    assert json.loads(described.stdout)["status"] == "Failed"
    with pytest.raises(JobFailed, match=f"Training job '{name}' is Failed"):
        load_model(name, bucket=open_bucket(bucket), cache_dir=cache)


def _cleaned(bucket: Path, name: str) -> None:
    """Only the record is left, and it says Failed."""
    left = sorted(str(p.relative_to(bucket / name)) for p in (bucket / name).rglob("*"))
    assert left in (["job.json"], ["job.json", "output"]), left
    record = json.loads((bucket / name / "job.json").read_text())
    assert record["status"] == "Failed" and "killed" in record["failure_reason"]


def test_leftovers_of_killed_jobs_are_removed_by_the_next_start(
    prepared: Path, tmp_path: Path
) -> None:
    """Issue 14.8: `kill -9` during training left the engine's encoded pieces, and during the
    archive a full model.bin and a partial .tmp-model.tar.gz, for good; a job loaded by name
    said InProgress while `jobs describe` said Failed."""
    bucket = tmp_path / "bucket"
    system_tmp = tmp_path / "tmp"  # the children's temporary folder: nothing may land there
    system_tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(system_tmp)}
    # Killed mid-training: once the record shows an epoch.
    record = bucket / "mid-training" / "job.json"
    proc = _start(bucket, "mid-training", prepared, env, "epochs=100000", "vector_dim=10",
                  "min_count=1")  # fmt: skip
    _wait_for(lambda: record.exists() and json.loads(record.read_text())["epochs"], proc, "epoch")
    proc.kill()
    proc.wait()
    assert list((bucket / "mid-training" / ".scratch").rglob("*.npz"))  # the encoded pieces
    _killed_job_answers_failed(bucket, "mid-training", tmp_path / "cache")
    # The next job's start cleans up after it. That job is killed mid-archive: no hook needed,
    # the window is seconds wide. With 2M buckets x 10 dimensions, model.bin is 80 MB, which
    # tarfile gzips at level 9 for seconds after the partial archive appears (polled every 5 ms).
    output = bucket / "mid-archive" / "output"
    proc = _start(bucket, "mid-archive", prepared, env, "epochs=1", "vector_dim=10")
    _wait_for(lambda: list(output.glob(".tmp-model.tar.gz.*")), proc, "partial archive")
    proc.kill()
    proc.wait()
    _cleaned(bucket, "mid-training")
    [model_bin] = (bucket / "mid-archive" / ".scratch").rglob("model.bin")
    assert model_bin.stat().st_size > 80_000_000
    assert list(system_tmp.iterdir()) == []
    _killed_job_answers_failed(bucket, "mid-archive", tmp_path / "cache")
    # The next start cleans up after that one too, and a job leaves nothing behind itself.
    result = run_cli(
        "--bucket", str(bucket), "train", "--input", str(prepared), "--job-name", "next",
        "--hp", "epochs=1", "--hp", "vector_dim=5", "--hp", "buckets=1000", env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    removed = re.search(
        r"Cleaned up after job mid-archive \(Failed\): removed (\d+) MB", result.stderr
    )
    assert removed and int(removed[1]) >= 76  # model.bin (80 MB = 76 MiB) and the partial archive
    _cleaned(bucket, "mid-archive")
    assert not (bucket / "next" / ".scratch").exists()
    assert list(system_tmp.iterdir()) == []
