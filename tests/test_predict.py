"""`sentiment predict` through the real CLI with a real model: one JSON answer a line, in order."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import POLARITY, REPO, read_reviews, run_cli
from sentiment.answers import SENTIMENTS
from sentiment.calibration import Calibration
from sentiment.model import Model, load_model_bin
from test_answers import ternary_model_dir  # noqa: F401 - a fixture, reused

NO_WORDS = {
    "sentiment": None,
    "scores": None,
    "error": {"code": "no_words", "message": "The line holds no words."},
}


@pytest.fixture(scope="module")
def calibrated(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a calibration.json beside it (temperature 3: flatter probabilities)."""
    folder = tmp_path_factory.mktemp("calibrated")
    shutil.copy(tiny_model_dir / "model.bin", folder / "model.bin")
    calibration = Calibration("temperature", 3.0, (0.0, 0.0), ("negative", "positive"))
    (folder / "calibration.json").write_text(json.dumps(calibration.to_dict()))
    return folder / "model.bin"


def _predict(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli("predict", *args, stdin=stdin, env=env, timeout=120)


def _expected(model: Model, texts: list[str], k: int | None, raw_scores: bool) -> list[Any]:
    """What the library gives for these texts, as predict writes it (6 decimals)."""
    out: list[Any] = []
    for text in texts:
        if not text.strip():
            out.append(NO_WORDS)
            continue
        [answer] = model.answers([text], raw_scores=raw_scores)
        obj: dict[str, Any] = {
            "sentiment": answer.sentiment,
            "scores": {k: round(v, 6) for k, v in answer.scores.items()},
        }
        if k:
            [best] = model.predict([text], k=k, raw_scores=raw_scores)
            obj |= {"label": list(best.labels), "prob": [round(p, 6) for p in best.probs]}
        out.append(obj)
    return out


TEXTS = [
    "Great product, works perfectly. Love it!",
    "",
    "Terrible. Broke after a day; waste of money.",
    "   \t",
    "The screen is great and bright. But the battery is awful, it died in an hour.",
    "ok",
]


def test_a_file_gets_one_answer_a_line_in_order(calibrated: Path, tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS) + "\r\n")  # a CRLF ending is not part of the text
    result = _predict("--model", str(calibrated), str(source), "--k", "2")
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    model = load_model_bin(calibrated)
    assert model.calibration is not None
    assert found == _expected(model, TEXTS, 2, raw_scores=False)
    # Blank lines are answered, not skipped; each answer's four scores sum to 1.
    assert found[1] == found[3] == NO_WORDS
    assert (found[0]["sentiment"], found[2]["sentiment"]) == ("positive", "negative")
    for obj in found:
        if obj["scores"]:
            assert sum(obj["scores"].values()) == pytest.approx(1.0, abs=1e-5)
            assert obj["label"][0] in ("__label__positive", "__label__negative")


def test_standard_input_and_raw_scores(calibrated: Path) -> None:
    stdin = "\n".join(TEXTS)  # no newline after the last line: still a line
    plain = _predict("--model", str(calibrated), stdin=stdin)
    raw = _predict("--model", str(calibrated), "-", "--raw-scores", stdin=stdin)
    assert plain.returncode == 0 and raw.returncode == 0, plain.stderr + raw.stderr
    model = load_model_bin(calibrated)
    assert [json.loads(x) for x in plain.stdout.splitlines()] == _expected(
        model, TEXTS, None, False
    )
    assert [json.loads(x) for x in raw.stdout.splitlines()] == _expected(model, TEXTS, None, True)
    assert plain.stdout != raw.stdout  # the calibration (T = 3) changes the scores
    assert _predict("--model", str(calibrated), stdin="").stdout == ""


def test_a_large_input_streams_through_the_workers_in_order(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    texts = [
        f"{title}. {body}".replace("\\n", " ") if i % 50 else ""
        for i, (_, title, body) in enumerate(read_reviews(POLARITY / "test.csv", 3000))
    ]
    model_bin = str(tiny_model_dir / "model.bin")
    # Two forked workers, batches of 100: 30 batches, at most 4 in flight.
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentiment", "predict", "--model", model_bin, "--batch-size", "100"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "SENTIMENT_THREADS": "2"},
        bufsize=0,  # unbuffered: readline takes no more than the line communicate() misses
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    # Answers come out while the input is still open: the first batch's, once 5 were read.
    proc.stdin.write("".join(t + "\n" for t in texts[:600]).encode())
    proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, "no answer before the input ended"
    first = proc.stdout.readline()
    # The rest is written while the answers are read (communicate), or both pipes fill up.
    rest, errors = proc.communicate("".join(t + "\n" for t in texts[600:]).encode(), timeout=120)
    assert proc.returncode == 0, errors.decode()
    lines = [first, *rest.splitlines()]
    assert len(lines) == len(texts)
    found = [json.loads(line) for line in lines]
    expected = load_model_bin(Path(model_bin)).answers([t for t in texts if t])
    answers = iter(expected)
    for text, obj in zip(texts, found, strict=True):
        if not text:
            assert obj == NO_WORDS
            continue
        answer = next(answers)
        assert obj["sentiment"] == answer.sentiment
        assert obj["scores"] == {k: round(v, 6) for k, v in answer.scores.items()}


def test_errors_are_clear(tiny_model_dir: Path, tmp_path: Path) -> None:
    missing = _predict("--model", str(tiny_model_dir / "model.bin"), str(tmp_path / "none.txt"))
    assert missing.returncode == 3 and missing.stderr.startswith("Error: No input file at")
    no_model = _predict("--model", str(tmp_path / "nope.bin"), stdin="hi\n")
    assert no_model.returncode == 3 and no_model.stderr.startswith("Error: ")
    bad_k = _predict("--model", str(tiny_model_dir / "model.bin"), "--k", "0", stdin="hi\n")
    assert bad_k.returncode == 2
    for result in (missing, no_model, bad_k):
        assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_three_class_model_answers_as_the_library_does(
    ternary_model_dir: Path,  # noqa: F811
    shared_data: Path,
    tmp_path: Path,
) -> None:
    """The weighted side of `answers.decide` (as Model.answers and the API answer), not the
    plain argmax of the four scores, which answers neutral for fewer 3-star reviews."""
    rows = read_reviews(shared_data / "amazon_review_full" / "test.csv", 400)
    texts = [f"{title}. {body}".replace("\\n", " ") for _, title, body in rows]
    source = tmp_path / "reviews.txt"
    source.write_text("".join(t + "\n" for t in texts))
    result = _predict("--model", str(ternary_model_dir / "model.bin"), str(source))
    assert result.returncode == 0, result.stderr
    found = [json.loads(line)["sentiment"] for line in result.stdout.splitlines()]
    model = load_model_bin(ternary_model_dir / "model.bin")
    assert found == [answer.sentiment for answer in model.answers(texts)]
    argmax = model.answer_scores(texts).argmax(axis=1)
    assert any(SENTIMENTS[i] != answer for i, answer in zip(argmax, found, strict=True))
