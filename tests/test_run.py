"""`sentiment run`: the whole pipeline end to end on a slice of the shared data (serving is
covered by test_up; here the run stops after the report)."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import FULL, POLARITY, SCREENSHOTS, run_cli


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A small full-layout and polarity-layout dataset, each with train.csv and test.csv."""
    root = tmp_path_factory.mktemp("inputs")
    folders = []
    for source, rows in ((FULL, 4000), (POLARITY, 4000)):
        folder = root / source.name
        folder.mkdir()
        for name, n in (("train.csv", rows), ("test.csv", rows // 4)):
            lines = (source / name).read_text(encoding="utf-8").splitlines(keepends=True)[:n]
            (folder / name).write_text("".join(lines), encoding="utf-8")
        folders.append(folder)
    return folders


@dataclass(frozen=True)
class Pipeline:
    out: Path
    result: subprocess.CompletedProcess[str]
    record: dict[str, Any]


@pytest.fixture(scope="module")
def pipeline(inputs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """One `sentiment run` (prepare, train, evaluate), run once for the tests that read it."""
    out = tmp_path_factory.mktemp("pipeline") / "work"
    result = run_cli(
        "run", *[a for f in inputs for a in ("--input", str(f))], "--eval", str(POLARITY / "test.csv"),
        "--output", str(out), "--no-serve", "--job-name", "pipeline", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "pipeline" / "job.json").read_text())
    return Pipeline(out, result, record)


def test_run_prepares_with_the_ternary_policy(pipeline: Pipeline) -> None:
    manifest = json.loads((pipeline.out / "prepared" / "manifest.json").read_text())
    assert manifest["policy"] == "ternary" and manifest["cleaning"]["title_weight"] == 3


def test_run_trains_a_calibrated_model(pipeline: Pipeline) -> None:
    record = pipeline.record
    assert record["status"] == "Completed"
    assert record["hyperparameters"]["early_stopping"] == "False"
    assert record["hyperparameters"]["vector_dim"] == "10"
    # The calibration fitted on the validation split, recorded and shipped beside model.bin.
    assert record["model"]["calibration"]["method"] == "length"
    with tarfile.open(pipeline.out / "pipeline" / "output" / "model.tar.gz") as tar:
        assert "calibration.json" in tar.getnames()


@pytest.mark.parametrize("folder", ["evaluation", "evaluation-amazon_review_polarity-test"])
def test_run_reports_on_each_test_set(pipeline: Pipeline, folder: str) -> None:
    report = json.loads((pipeline.out / "pipeline" / folder / "report.json").read_text())
    assert report["metrics"]["accuracy"] > 0.75
    assert report["learning_curve"]
    assert (pipeline.out / "pipeline" / folder / "learning_curve.png").is_file()
    assert (pipeline.out / "pipeline" / folder / "report.html").is_file()
    assert "report at" in pipeline.result.stderr and "pipeline done" in pipeline.result.stderr


def _polarity_report(pipeline: Pipeline) -> tuple[Path, dict[str, Any]]:
    report_dir = pipeline.out / "pipeline" / "evaluation-amazon_review_polarity-test"
    return report_dir, json.loads((report_dir / "report.json").read_text())


def test_run_reports_the_four_answers_on_the_whole_polarity_test(pipeline: Pipeline) -> None:
    _, report = _polarity_report(pipeline)
    assert report["test"]["examples"] == sum(
        1 for _ in (POLARITY / "test.csv").open(encoding="utf-8")
    )
    # The four answers: positive score against negative on a polarity test, with its targets.
    answers = report["metrics"]["answers"]
    assert answers["classes"] == 2 and answers["calibrated"]
    names = [t["name"] for t in answers["targets"]]
    assert "accuracy, positive score against negative" in names
    assert answers["accuracy"] > 0.75


def test_the_report_opens_in_a_browser_with_every_plot(pipeline: Pipeline, page: Any) -> None:
    report_dir, report = _polarity_report(pipeline)
    page.goto((report_dir / "report.html").as_uri())
    plots = page.locator("img[data-plot]")
    names = sorted(plots.nth(i).get_attribute("data-plot") for i in range(plots.count()))
    assert names == sorted(
        [
            "confusion_matrix.png",
            "reliability.png",
            "coverage.png",
            "learning_curve.png",
            "answers_reliability_before.png",
            "answers_reliability_after.png",
        ]
    )
    assert page.locator("tr[data-target]").count() == len(report["metrics"]["answers"]["targets"])
    widths = plots.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert all(w and w > 100 for w in widths), widths
    assert f"{report['metrics']['accuracy']:.4f}" in page.content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "evaluation-report.png"), full_page=True)


def test_run_tunes_then_trains_with_the_best_values(inputs: list[Path], tmp_path: Path) -> None:
    """`run --tune MINUTES`: a tuning job within its budget, then the final model trained with
    its best values, whose report shows the tuning plots."""
    out = tmp_path / "work"
    started = time.monotonic()
    result = run_cli(
        "run", "--input", str(inputs[1]), "--output", str(out), "--no-serve", "--job-name", "final",
        "--tune", "0.25", "--hp", "vector_dim=10", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    [tuning] = [p.parent for p in out.glob("*/tuning.json")]
    record = json.loads((tuning / "tuning.json").read_text())
    assert record["status"] == "Completed" and record["seconds"] < 0.25 * 60 + 10
    assert time.monotonic() - started < 300
    assert "vector_dim" not in [r.split("=")[0] for r in record["config"]["ranges"]]
    final = json.loads((out / "final" / "job.json").read_text())
    assert final["tuning_job"] == tuning.name
    for name, value in record["best"]["params"].items():
        assert final["hyperparameters"][name] == value
    assert final["hyperparameters"]["vector_dim"] == "10"
    assert (out / "final" / "evaluation" / "tuning_objective.png").is_file()
