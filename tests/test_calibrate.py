"""`sentiment calibrate`: a calibration for a model brought from SageMaker's BlazingText.

The model is our trainer's on the shared polarity sample relabelled `1`/`2` (a bare model.bin,
no preprocessing.json, no calibration: as BlazingText leaves it; `test_label_map._train`),
calibrated through the real CLI on a slice of the shared polarity test.csv it never saw, and
measured on the next slice.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pytest

from aws_fixtures import Aws
from conftest import POLARITY, run_cli, start_endpoint
from sentiment.calibration import ece
from sentiment.evaluate.report import read_test
from sentiment.model import load_model, write_model_archive
from test_label_map import _train

CALIBRATION_ROWS = slice(0, 2000)
HELD_OUT_ROWS = slice(2000, 4000)


def _csv_slice(path: Path, rows: slice) -> Path:
    """Rows of the shared polarity test.csv (one review a line there: no quoted line breaks)."""
    lines = (POLARITY / "test.csv").read_text(encoding="utf-8").splitlines()[rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def zhang_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare model.bin with labels `__label__1` (negative) and `__label__2` (positive),
    trained long on few rows, so it is sure of itself as a BlazingText model is (ECE 0.11 on
    the calibration rows; the 5 epochs of `test_label_map`'s model leave it at 0.022: see
    `test_a_well_calibrated_model_is_not_made_worse_on_reviews`)."""
    folder = tmp_path_factory.mktemp("zhang-calibrate") / "model"
    names = {"negative": "1", "positive": "2"}
    return _train(tiny_model_dir, folder, names, lr=1.0, epochs=25)


@pytest.fixture(scope="module")
def calibrated(zhang_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calibrated")
    validation = _csv_slice(folder / "validation.csv", CALIBRATION_ROWS)
    before = {p.name: _sha(p) for p in zhang_model.parent.iterdir()}
    out = folder / "out" / "model.tar.gz"
    done = run_cli("calibrate", "--model", str(zhang_model), "--validation", str(validation),
                   "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Calibrated model: {out}" in done.stdout
    assert "ECE" in done.stderr and "NLL" in done.stderr
    assert "2,000 used of 2,000 read" in done.stderr
    # The input model is left as it was: same files, same bytes.
    assert {p.name: _sha(p) for p in zhang_model.parent.iterdir()} == before
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_bare_sagemaker_model_gets_calibrated(
    zhang_model: Path, calibrated: Path, tmp_path: Path
) -> None:
    with tarfile.open(calibrated) as tar:
        names = tar.getnames()
        model_bin = tar.extractfile("model.bin")
        assert model_bin is not None
        assert model_bin.read() == zhang_model.read_bytes()  # byte-identical
        fitted = json.loads(tar.extractfile("calibration.json").read())  # type: ignore[union-attr]
    # No preprocessing.json: the bare model had none, and is served with the unrecorded cleaning.
    assert names == ["calibration.json", "model.bin"]
    assert fitted["inputs"] == "log" and fitted["method"] == "length"
    assert sorted(fitted["labels"]) == ["1", "2"]

    raw, ours = load_model(zhang_model), load_model(calibrated, cache_dir=tmp_path)
    assert raw.calibration is None and ours.calibration is not None
    assert "scores calibrated" in ours.derivation
    # Better calibrated on rows neither the training nor the calibration saw.
    held = read_test(_csv_slice(tmp_path / "held.csv", HELD_OUT_ROWS), ours)
    y = np.array([ours.classes.index(label) for label in held.labels])
    ece_before = ece(y, raw.predict_proba(held.texts))
    ece_after = ece(y, ours.predict_proba(held.texts))
    assert ece_after < ece_before, (ece_before, ece_after)
    # A one-word text is no longer as sure as a long review can be.
    assert raw.predict_proba(["terrible"]).max() > 0.999
    assert ours.predict_proba(["terrible"]).max() < 0.99


def test_the_calibrated_model_is_served_calibrated(calibrated: Path, tmp_path: Path) -> None:
    process, url = start_endpoint(calibrated, tmp_path / "serve.log")
    try:
        described = httpx.get(f"{url}/", timeout=10).json()
    finally:
        process.stop()
    assert described["model"]["calibration"]["inputs"] == "log"


def test_a_prepared_validation_file(
    zhang_model: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Prepared `__label__x text` lines the model did not train on (it saw the first 4,000)."""
    lines = (tiny_model_dir / "train.txt").read_text().splitlines()[20000:20600]
    relabelled = [
        line.replace("__label__negative ", "__label__1 ", 1).replace(
            "__label__positive ", "__label__2 ", 1
        )
        for line in lines
    ]
    validation = tmp_path / "validation.txt"
    validation.write_text("\n".join(relabelled) + "\n")
    out = tmp_path / "model.tar.gz"
    done = run_cli("calibrate", "--model", str(zhang_model), "--validation", str(validation),
                   "--output", str(out), "--label-map", "1=negative,2=positive")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "600 used of 600 read" in done.stderr
    assert load_model(out, cache_dir=tmp_path).calibration is not None


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("few", 4, "Only 150 rows of"),
        ("one_class", 4, "a calibration needs rows of more than one class"),
        ("no_label", 4, "has a label the model knows"),
        ("missing", 3, "No validation file at"),
    ],
)
def test_refusals(
    case: str,
    code: int,
    message: str,
    zhang_model: Path,
    tiny_model_dir: Path,
    tmp_path: Path,
) -> None:
    model = zhang_model
    validation = tmp_path / "validation.csv"
    if case == "few":
        _csv_slice(validation, slice(0, 150))
    elif case == "one_class":
        rows = (POLARITY / "test.csv").read_text(encoding="utf-8").splitlines()
        validation.write_text("\n".join([r for r in rows if r.startswith('"2"')][:300]) + "\n")
    elif case == "no_label":
        # A model labelled negative/positive, a prepared file labelled 1/2.
        model = tiny_model_dir / "model.bin"
        validation = tmp_path / "validation.txt"
        validation.write_text("__label__1 bad\n__label__2 good\n" * 150)
    else:
        validation = tmp_path / "nowhere.csv"
    out = tmp_path / "out" / "model.tar.gz"
    done = run_cli(
        "calibrate", "--model", str(model), "--validation", str(validation), "--output", str(out)
    )
    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("Error: "), done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() and not out.parent.exists()


def test_from_s3_to_s3(aws: Aws, zhang_model: Path, tmp_path: Path) -> None:
    """A model.tar.gz and a CSV in S3 (moto), the calibrated archive written there; the source
    archive's preprocessing.json is carried over byte for byte, the source left as it was."""
    from sentiment.text import UNRECORDED_CLEANING

    bucket = aws.new_bucket()
    s3 = aws.client("s3")
    pre = json.dumps({"cleaning": UNRECORDED_CLEANING.to_dict(), "policy": "binary"}).encode()
    source = tmp_path / "source.tar.gz"
    write_model_archive(source, zhang_model, {"preprocessing.json": pre})
    name = bucket.removeprefix("s3://")
    s3.upload_file(str(source), name, "bt/output/model.tar.gz")  # type: ignore[attr-defined]
    validation = _csv_slice(tmp_path / "validation.csv", CALIBRATION_ROWS)
    s3.upload_file(str(validation), name, "data/validation.csv")  # type: ignore[attr-defined]

    done = aws.cli(
        tmp_path / "cache",
        "calibrate",
        "--model",
        f"{bucket}/bt/output/model.tar.gz",
        "--validation",
        f"{bucket}/data/validation.csv",
        "--output",
        f"{bucket}/calibrated/model.tar.gz",
    )
    assert done.returncode == 0, done.stderr
    assert aws.keys(bucket) == [
        "bt/output/model.tar.gz",
        "calibrated/model.tar.gz",
        "data/validation.csv",
    ]
    got = tmp_path / "got.tar.gz"
    s3.download_file(name, "bt/output/model.tar.gz", str(got))  # type: ignore[attr-defined]
    assert got.read_bytes() == source.read_bytes()
    s3.download_file(name, "calibrated/model.tar.gz", str(got))  # type: ignore[attr-defined]
    with tarfile.open(got) as tar:
        assert tar.getnames() == ["calibration.json", "preprocessing.json", "model.bin"]
        assert tar.extractfile("preprocessing.json").read() == pre  # type: ignore[union-attr]
    model = load_model(got, cache_dir=tmp_path / "cache")
    assert model.calibration is not None and model.preprocessing.source == "sidecar"


def test_the_input_model_is_never_overwritten(zhang_model: Path, tmp_path: Path) -> None:
    source = tmp_path / "model.tar.gz"
    write_model_archive(source, zhang_model, {})
    before = source.read_bytes()
    validation = _csv_slice(tmp_path / "validation.csv", CALIBRATION_ROWS)
    done = run_cli(
        "calibrate",
        "--model",
        str(source),
        "--validation",
        str(validation),
        "--output",
        str(source),
    )
    assert done.returncode == 2, done.stderr
    assert "is the input model; calibrate leaves the input as it was" in done.stderr
    assert source.read_bytes() == before
    bad = run_cli(
        "calibrate", "--model", str(source), "--validation", str(validation), "--output", "x.bin"
    )
    assert bad.returncode == 2
    assert "--output 'x.bin' must name a model.tar.gz" in bad.stderr


def test_a_well_calibrated_model_is_not_made_worse_on_reviews(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The short-text term tempers reviews of a few dozen words too: fitted on short texts
    alone, it took a model already calibrated on reviews (raw ECE 0.027) to n0 = 32 and review
    ECE 0.066 (0.055 with n0 chosen on the short texts and the reviews together). Its fade-out
    over a review's length (L), chosen with n0, keeps the reviews as they were (here n0 = 32,
    L = 40: review NLL 0.372 -> 0.368, ECE 0.027 -> 0.031; short texts' NLL 2.09 -> 0.56)."""
    from sentiment.calibration import fit_labelled
    from sentiment.labels import read_labelled

    model_bin = _train(tiny_model_dir, tmp_path / "model", {"negative": "1", "positive": "2"})
    model = load_model(model_bin)
    rows = (tiny_model_dir / "train.txt").read_text().splitlines()[20000:23000]
    held = tmp_path / "validation.txt"
    names = {"__label__negative ": "__label__1 ", "__label__positive ": "__label__2 "}
    lines = []
    for line in rows:
        for ours, theirs in names.items():
            line = line.replace(ours, theirs, 1)
        lines.append(line)
    held.write_text("\n".join(lines) + "\n")
    texts, labels = read_labelled(held, model.classes)
    fitted = fit_labelled(model, texts, labels, shares={})
    assert fitted.length_scale > 0  # the term fades out over a review's length
    # The recorded review figures are measured with the short-text term.
    stats = fitted.stats
    assert stats["nll_after"] <= stats["nll_before"], stats
    assert stats["ece_after"] <= stats["ece_before"] + 0.01, stats
    assert stats["short_nll_after"] < stats["short_nll_before"] / 2, stats
