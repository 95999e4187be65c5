"""Evaluate: metrics against hand-computed cases, and `sentiment evaluate` on real files with a
real model (prepared test files, the raw shared CSV, a baseline, bad test files)."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import POLARITY, read_reviews, run_cli
from sentiment import metrics as m
from sentiment.errors import ModelError

# A 4-example binary case worked out by hand (labels: 0 = negative, 1 = positive).
Y = np.array([0, 0, 1, 1])
P_POS = np.array([0.1, 0.6, 0.8, 0.4])
PROBS = np.column_stack([1 - P_POS, P_POS])


def test_classification_metrics_match_a_hand_computed_case() -> None:
    result = m.classification(Y, PROBS, ["negative", "positive"])
    # predictions: [neg, pos, pos, neg] -> one right per class
    assert result["accuracy"] == 0.5 and result["examples"] == 4
    assert result["confusion_matrix"]["rows_true_columns_predicted"] == [[1, 1], [1, 1]]
    for name in ("negative", "positive"):
        assert result["per_label"][name] == {
            "precision": 0.5,
            "recall": 0.5,
            "f1": 0.5,
            "support": 2,
        }
    # log loss: -(ln 0.9 + ln 0.4 + ln 0.8 + ln 0.4) / 4
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.8) + math.log(0.4)) / 4
    assert result["log_loss"] == pytest.approx(expected) and expected == pytest.approx(
        0.540271, abs=1e-6
    )


def test_averages_weight_by_support_and_skip_absent_labels() -> None:
    # 3 labels; "c" never occurs in the truth. Truth a,a,a,b; predicted a,a,b,c.
    y = np.array([0, 0, 0, 1])
    probs = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    result = m.classification(y, probs, ["a", "b", "c"])
    a, b, c = (result["per_label"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, 2 / 3, 3)
    assert a["f1"] == pytest.approx(0.8)
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == (0.0, 0.0, 0.0, 1)
    assert c["support"] == 0
    # macro over the labels that occur (a, b); weighted by support 3:1
    assert result["macro"]["f1"] == pytest.approx(0.4)
    assert result["weighted"]["f1"] == pytest.approx(0.6)
    assert result["weighted"]["recall"] == pytest.approx(0.5) == result["accuracy"]


def test_ranking_metrics_match_a_hand_computed_case() -> None:
    # positive scores 0.8, 0.4 against negatives 0.1, 0.6: 3 of 4 pairs ordered right
    assert m.roc_auc(Y, P_POS) == pytest.approx(0.75)
    # ranked: 0.8 (+), 0.6 (-), 0.4 (+), 0.1 (-): AP = 0.5 * 1 + 0.5 * 2/3
    assert m.average_precision(Y, P_POS) == pytest.approx(0.5 + 1 / 3)
    # ties count as half; one class only has no AUC
    assert m.roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert m.roc_auc(np.array([1, 1]), np.array([0.2, 0.9])) is None
    fpr, tpr = m.roc_curve(Y, P_POS)
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]


def test_calibration_and_coverage_match_a_hand_computed_case() -> None:
    # top-1 confidence 0.9 (right), 0.6 (wrong), 0.8 (right), 0.6 (wrong)
    cal = m.calibration(Y, PROBS)
    # ECE = |1-0.9|/4 + 2*|0-0.6|/4 + |1-0.8|/4
    assert cal["ece"] == pytest.approx(0.375)
    filled = [b for b in cal["bins"] if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in filled] == [(2, 0.0), (1, 1.0), (1, 1.0)]
    assert sum(b["count"] for b in cal["bins"]) == 4 and len(cal["bins"]) == 10
    cov = {row["threshold"]: row for row in m.coverage(Y, PROBS)["table"]}
    assert cov[0.5] == {"threshold": 0.5, "coverage": 1.0, "accuracy": 0.5, "withheld": 0}
    assert cov[0.7] == {"threshold": 0.7, "coverage": 0.5, "accuracy": 1.0, "withheld": 2}
    assert cov[0.95] == {"threshold": 0.95, "coverage": 0.0, "accuracy": None, "withheld": 4}
    errors = m.confident_errors(Y, PROBS, ["t0", "t1", "t2", "t3"], ["negative", "positive"])
    assert errors["negative"] == [
        {"index": 1, "text": "t1", "predicted": "positive", "confidence": pytest.approx(0.6)}
    ]
    assert [e["index"] for e in errors["positive"]] == [3]


@pytest.fixture(scope="module")
def prepared_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared polarity test, labelled and normalized by the one Python definition."""
    from sentiment.labels import Layout, Policy, map_label, with_prefix
    from sentiment.text import UNRECORDED_CLEANING, compose, normalize

    path = tmp_path_factory.mktemp("evaluate") / "test.txt"
    lines = []
    for label, title, body in read_reviews(POLARITY / "test.csv"):
        name = map_label(Layout.POLARITY, label, Policy.BINARY)
        assert name is not None
        lines.append(f"{with_prefix(name)} {normalize(compose(title, body), UNRECORDED_CLEANING)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class Evaluated:
    out: Path
    result: subprocess.CompletedProcess[str]
    report: dict[str, Any]


def _evaluate(model_dir: Path, test: Path, out: Path) -> Evaluated:
    result = run_cli(
        "evaluate", "--model", str(model_dir / "model.bin"), "--test", str(test),
        "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Evaluated(out, result, json.loads((out / "report.json").read_text()))


@pytest.fixture(scope="module")
def of_prepared(
    tiny_model_dir: Path, prepared_test: Path, tmp_path_factory: pytest.TempPathFactory
) -> Evaluated:
    """`sentiment evaluate` of the prepared test file, run once for the tests that read it."""
    return _evaluate(tiny_model_dir, prepared_test, tmp_path_factory.mktemp("prepared") / "report")


@pytest.fixture(scope="module")
def of_raw(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Evaluated:
    """`sentiment evaluate` of the raw polarity CSV the prepared file was made from."""
    return _evaluate(tiny_model_dir, POLARITY / "test.csv", tmp_path_factory.mktemp("raw") / "raw")


def test_evaluate_prints_where_the_report_is_and_a_summary(of_prepared: Evaluated) -> None:
    assert of_prepared.result.stdout.strip() == f"Report: {of_prepared.out / 'report.html'}"
    assert "accuracy" in of_prepared.result.stderr and "macro F1" in of_prepared.result.stderr


def test_the_report_holds_the_metrics(of_prepared: Evaluated) -> None:
    report = of_prepared.report
    found = report["metrics"]
    assert report["test"]["examples"] == len(read_reviews(POLARITY / "test.csv"))
    assert 0.8 < found["accuracy"] < 1.0
    assert set(found["per_label"]) == {"negative", "positive"}
    assert found["binary"]["positive_label"] == "positive"
    assert 0.8 < found["binary"]["roc_auc"] <= 1.0 and 0.8 < found["binary"]["pr_auc"] <= 1.0
    assert 0.0 <= found["calibration"]["ece"] < 0.2
    assert len(found["confident_errors"]["negative"]) == 5
    assert found["confident_errors"]["negative"][0]["text"]
    assert report["learning_curve"] is None  # a bare .bin has no job record


def test_the_report_draws_its_plots(of_prepared: Evaluated) -> None:
    for name in ("confusion_matrix", "reliability", "coverage", "roc", "pr"):
        assert (of_prepared.out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (of_prepared.out / "report.html").read_text()
    # five plots and the four answers' reliability before and after calibration
    assert html.count("src='data:image/png;base64,") == 7


def test_a_raw_csv_gives_the_very_same_numbers(of_prepared: Evaluated, of_raw: Evaluated) -> None:
    # The raw CSV goes through the same cleaning and label policy.
    assert of_raw.report["test"]["source"] == "csv (polarity layout, binary policy)"
    assert of_raw.report["metrics"]["accuracy"] == of_prepared.report["metrics"]["accuracy"]
    assert of_raw.report["metrics"]["log_loss"] == pytest.approx(
        of_prepared.report["metrics"]["log_loss"]
    )


def test_errors_from_a_raw_csv_are_shown_as_written(
    of_prepared: Evaluated, of_raw: Evaluated
) -> None:
    # Title, a dash, then the text.
    shown = of_raw.report["metrics"]["confident_errors"]["positive"][0]
    found = of_prepared.report["metrics"]["confident_errors"]["positive"][0]
    assert shown == found | {"text": shown["text"]}
    _label, title, body = read_reviews(POLARITY / "test.csv")[shown["index"]]
    assert shown["text"] == f"{title.strip()} — {body.replace(chr(92) + 'n', ' ').strip()}"


def test_baseline_side_by_side(tiny_model_dir: Path, prepared_test: Path, tmp_path: Path) -> None:
    # The baseline: a weak model from our own training job, given as its model.tar.gz.
    bucket = tmp_path / "bucket"
    trained = run_cli(
        "--bucket", str(bucket), "train", "--train", str(prepared_test), "--job-name", "weak",
        "--hp", "epochs=1", "--hp", "vector_dim=5", "--hp", "min_count=5",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    small = bucket / "weak" / "output" / "model.tar.gz"
    out = tmp_path / "report"
    result = run_cli(
        "evaluate", "--model", str(tiny_model_dir / "model.bin"), "--test", str(prepared_test),
        "--baseline", str(small), "--output", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    ours, theirs = report["metrics"]["accuracy"], report["baseline"]["metrics"]["accuracy"]
    assert report["differences"]["accuracy"] == pytest.approx(ours - theirs)
    assert report["baseline"]["model"]["ref"] == str(small)
    assert "baseline" in (out / "report.html").read_text().lower()


@pytest.mark.parametrize(
    ("content", "code", "message"),
    [
        (None, 3, "No test file at"),
        ("", 4, "is empty"),
        ("\n  \n", 4, "is empty"),
        (
            "__label__neutral so so\n__label__positive fine\n",
            4,
            "labels the model does not know: ['neutral']",
        ),
        ("__label__positive good\n__label__3 meh\n", 4, "mixes label sets"),
        ("hello,world\n", 4, "no readable review rows"),
    ],
    ids=["missing", "empty", "blank", "unknown-label", "mixed-labels", "not-a-review-csv"],
)
def test_bad_test_files_are_clear_errors(
    tiny_model_dir: Path, tmp_path: Path, content: str | None, code: int, message: str
) -> None:
    test = tmp_path / "test.txt"
    if content is not None:
        test.write_text(content)
    out = tmp_path / "report"
    result = run_cli(
        "evaluate", "--model", str(tiny_model_dir / "model.bin"), "--test", str(test),
        "--output", str(out),
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing half-written


def test_a_model_that_is_not_a_model_is_a_clear_error(prepared_test: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"not a fastText model")
    result = run_cli("evaluate", "--model", str(bogus), "--test", str(prepared_test))
    assert result.returncode == ModelError.exit_code, result.stderr
    assert result.stderr.startswith("Error: ") and "is not a fastText model file" in result.stderr
    assert "Traceback" not in result.stderr


def test_rows_outside_the_layout_fail_unless_allowed(tiny_model_dir: Path, tmp_path: Path) -> None:
    from conftest import FULL

    model = str(tiny_model_dir / "model.bin")
    test = str(FULL / "test.csv")  # stars 1-5: read as polarity, the 3-5 star rows are outside
    out = tmp_path / "report"
    wrong = run_cli("evaluate", "--model", model, "--test", test, "--layout", "polarity",
                 "--output", str(out))  # fmt: skip
    assert wrong.returncode == 4 and "Traceback" not in wrong.stderr
    assert "rejected 3,286 of 4,486 rows (73.3%) as label_outside_layout" in wrong.stderr
    assert "above the 1.00% allowed" in wrong.stderr and "--layout full" in wrong.stderr
    assert not out.exists()
    allowed = run_cli("evaluate", "--model", model, "--test", test, "--layout", "polarity",
                   "--max-reject-ratio", "0.8", "--output", str(out))  # fmt: skip
    assert allowed.returncode == 0, allowed.stderr
    report = json.loads((out / "report.json").read_text())["test"]
    assert report["rejected"] == {"label_outside_layout": 3286} and report["examples"] == 1200
    assert report["source"] == "csv (polarity layout, binary policy)"
    assert "dropped: none; rejected: 3,286 label_outside_layout." in allowed.stderr


def test_recorded_row_options_are_read_as_written(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A model's record of how its rows became text is read as prepare's manifest is: a
    hand-edited `"include_title": "false"` used to put the title back in (`bool("false")`)."""
    import shutil

    from sentiment.errors import UsageError
    from sentiment.evaluate.report import _row_options
    from sentiment.model import load_model

    shutil.copy(tiny_model_dir / "model.bin", tmp_path / "model.bin")
    sidecar = tmp_path / "preprocessing.json"
    record = {"cleaning": {}, "policy": "binary", "rows": {"include_title": "false"}}
    sidecar.write_text(json.dumps(record))
    options = _row_options(load_model(tmp_path / "model.bin"))
    assert (options.include_title, options.title_weight) == (False, 1)
    record["rows"] = {"include_title": True, "title_weight": "3"}
    sidecar.write_text(json.dumps(record))
    options = _row_options(load_model(tmp_path / "model.bin"))
    assert (options.include_title, options.title_weight) == (True, 3)
    record["rows"] = {"title_weight": "heavy"}
    sidecar.write_text(json.dumps(record))
    with pytest.raises(UsageError, match="'title_weight' is 'heavy'"):
        _row_options(load_model(tmp_path / "model.bin"))
