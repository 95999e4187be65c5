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
from pathlib import Path

import fasttext
import pytest

from conftest import REPO
from sentiment.model import load_model
from sentiment.text import DEFAULT_CLEANING


@pytest.fixture(scope="module")
def prepared(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared folder as `sentiment prepare` writes it (files + manifest), from the shared sample."""
    folder = tmp_path_factory.mktemp("prepared")
    lines = (tiny_model_dir / "train.txt").read_text().splitlines()
    (folder / "train.txt").write_text("\n".join(lines[:8000]) + "\n")
    (folder / "validation.txt").write_text("\n".join(lines[20000:22000]) + "\n")
    manifest = {
        "policy": "binary",
        "labels": ["negative", "positive"],
        "cleaning": DEFAULT_CLEANING.to_dict()
        | {"include_title": True, "title_weight": 1, "min_tokens": 1, "dedupe": True},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _cli(*args: str, bucket: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentiment", "--bucket", str(bucket), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )


def test_train_writes_a_sagemaker_layout_and_a_record(prepared: Path, tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
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
    assert result.stdout.startswith("job-a Completed validation accuracy 0.")
    # BlazingText's metric lines, as SageMaker metric definitions scrape them.
    assert re.search(r"^#train_accuracy: \d\.\d{4}$", result.stderr, re.M)
    assert re.search(r"^#validation_accuracy: \d\.\d{4}$", result.stderr, re.M)
    assert len(re.findall(r"^Validation accuracy: \d\.\d{6}$", result.stderr, re.M)) == 3
    assert "Million Words/sec" in result.stderr
    archive = bucket / "job-a" / "output" / "model.tar.gz"
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == [
            "calibration.json",
            "model.bin",
            "preprocessing.json",
        ]  # model.bin at the root; calibration.json fitted on the validation channel
    record = json.loads((bucket / "job-a" / "job.json").read_text())
    calibration = record["model"]["calibration"]
    assert calibration["labels"] == ["positive", "negative"] and calibration["temperature"] > 0
    assert calibration["stats"]["nll_after"] <= calibration["stats"]["nll_before"]
    assert re.search(r"^Calibration \(length, T=[\d.]+\) on \d+ validation", result.stderr, re.M)
    assert record["status"] == "Completed" and record["failure_reason"] is None
    assert (
        record["hyperparameters"]["epochs"] == "3"
        and record["hyperparameters"]["learning_rate"] == "0.05"
    )
    assert record["extras"] == {"threads": 0, "seed": 0, "loss": "softmax"}
    assert [e["epoch"] for e in record["epochs"]] == [1, 2, 3]
    assert all(e["validation_accuracy"] and e["words_per_sec"] > 0 for e in record["epochs"])
    assert record["inputs"]["train"]["sha256"] and record["inputs"]["validation"]["bytes"] > 0
    assert (
        record["dictionary"]["labels"] == ["__label__positive", "__label__negative"]
        or record["dictionary"]["nlabels"] == 2
    )
    assert (
        record["model"]["key"] == "job-a/output/model.tar.gz"
        and record["ended"] >= record["started"]
    )
    # The model is served through the one inference path, with the preprocessing it was trained with.
    model = load_model(
        "job-a",
        bucket=__import__("sentiment.storage", fromlist=["x"]).open_bucket(bucket),
        cache_dir=tmp_path / "cache",
    )
    assert model.preprocessing.source == "sidecar" and model.preprocessing.policy == "binary"
    assert model.predict(["Great, works perfectly, love it"])[0].labels == ("__label__positive",)
    # jobs list / describe
    listed = _cli("jobs", "list", bucket=bucket)
    assert listed.returncode == 0 and "job-a" in listed.stdout and "Completed" in listed.stdout
    described = _cli("jobs", "describe", "job-a", "--json", bucket=bucket)
    assert json.loads(described.stdout)["name"] == "job-a"
    pretty = _cli("jobs", "describe", "job-a", bucket=bucket)
    assert pretty.returncode == 0 and "hyperparameters: mode=supervised epochs=3" in pretty.stdout
    assert "best epoch" in pretty.stdout and "model: job-a/output/model.tar.gz" in pretty.stdout
    assert _cli("jobs", "describe", "nope", bucket=bucket).returncode == 3
    # Names are unique.
    again = _cli("train", "--input", str(prepared), "--job-name", "job-a", bucket=bucket)
    assert again.returncode == 2 and "already exists" in again.stderr


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
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if record_path.exists() and json.loads(record_path.read_text()).get("epochs"):
            break
        time.sleep(0.1)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "stopped; no model was written" in stderr
    record = json.loads(record_path.read_text())
    assert record["status"] == "Stopped" and record["ended"]
    assert not (bucket / "long" / "output" / "model.tar.gz").exists()
    assert not list((bucket / "long").rglob("*.tar.gz*"))
