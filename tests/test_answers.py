"""The four answers (positive, negative, neutral, mixed): rules on written cases, then a real
three-class model and a real binary one, calibrated from a calibration.json beside model.bin."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import read_reviews
from sentiment import answers, layout
from sentiment.answers import SENTIMENTS, combine, derivation, plan, polarity, sentences
from sentiment.calibration import Calibration
from sentiment.errors import ModelError
from sentiment.model import load_model

TERNARY = ("negative", "neutral", "positive")
MIXED_TEXT = "The screen is gorgeous. The battery died after two days."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meh", ["meh"]),
        ("", [""]),
        ("Good. Bad!", ["Good.", "Bad!"]),
        ('He said "wow." Then it broke?! Sad', ['He said "wow."', "Then it broke?!", "Sad"]),
        ("line one\nline two", ["line one", "line two"]),
        ("fine; but slow", ["fine", "but slow"]),
        ("v1.5 is out", ["v1.5 is out"]),  # no space after the dot: one sentence
        ("Great!!! :) ...", ["Great!!!"]),  # pieces without a word are not sentences
    ],
)
def test_sentences_of_raw_text(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_plan_lists_texts_then_their_sentences() -> None:
    p = plan(["one", "A. B.", "two", "C! D! E!"])
    assert p.strings == ["one", "A. B.", "two", "C! D! E!", "A.", "B.", "C!", "D!", "E!"]
    assert p.n == 4
    assert p.owner.tolist() == [1, 1, 3, 3, 3]
    assert p.starts.tolist() == [0, 2]


def _scores(texts: list[str], rows: dict[str, list[float]], classes=TERNARY) -> np.ndarray:
    """combine() with each string's probabilities written by hand (by string)."""
    p = plan(texts)
    return combine(p, classes, np.array([rows[s] for s in p.strings]))


NEG, NEU, POS = [0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]


def test_one_clearly_positive_and_one_clearly_negative_sentence_is_mixed() -> None:
    rows = {
        MIXED_TEXT: [0.45, 0.1, 0.45],
        "The screen is gorgeous.": POS,
        "The battery died after two days.": NEG,
    }
    out = _scores([MIXED_TEXT], rows)
    assert SENTIMENTS[out[0].argmax()] == "mixed"
    assert out[0, 3] == pytest.approx(0.9)
    assert out.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("sides", "expected"),
    [
        ((POS, POS), "positive"),  # two positive sentences are not mixed
        ((NEG, NEU), "negative"),  # a neutral one beside a negative one neither
        ((POS, NEU), "positive"),
    ],
)
def test_sentences_of_one_side_are_not_mixed(
    sides: tuple[list[float], list[float]], expected: str
) -> None:
    whole = POS if expected == "positive" else NEG
    out = _scores(
        ["X one. Y two."], {"X one. Y two.": whole, "X one.": sides[0], "Y two.": sides[1]}
    )
    assert SENTIMENTS[out[0].argmax()] == expected
    assert out[0, 3] <= 0.05


def test_scores_sum_to_one_for_every_text() -> None:
    rng = np.random.default_rng(0)
    texts = ["a", "b. c.", "d! e? f.", "g"]
    p = plan(texts)
    probs = rng.dirichlet(np.ones(3), size=len(p.strings))
    out = combine(p, TERNARY, probs)
    assert out.shape == (4, 4)
    assert np.allclose(out.sum(axis=1), 1.0) and (out >= 0).all()


def test_binary_and_star_models_get_the_four_answers() -> None:
    binary = polarity(("negative", "positive"), np.array([[0.5, 0.5], [0.01, 0.99], [0.8, 0.2]]))
    assert np.allclose(binary, [[0, 0, 1], [0.98, 0, 0.02], [0, 0.6, 0.4]])
    stars = ("1_star", "2_stars", "3_stars", "4_stars", "5_stars")
    assert np.allclose(polarity(stars, np.array([[0.1, 0.2, 0.3, 0.15, 0.25]])), [[0.4, 0.3, 0.3]])
    assert derivation(("negative", "positive")).startswith("binary model")
    assert derivation(TERNARY).startswith("three-class model")
    assert "4_stars + 5_stars" in derivation(stars)


def test_labels_without_polarity_are_refused() -> None:
    with pytest.raises(ModelError):
        derivation(("spam", "ham"))
    with pytest.raises(ModelError):
        polarity(("neutral", "positive"), np.ones((1, 2)))


def test_answers_are_made_from_the_score_matrix() -> None:
    got = answers.to_answers(np.array([[0.1, 0.2, 0.3, 0.4]]))
    assert got == [
        answers.Answer("mixed", dict(zip(SENTIMENTS, [0.1, 0.2, 0.3, 0.4], strict=True)))
    ]


@pytest.fixture(scope="module")
def ternary_model_dir(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A real three-class fastText model on the full sample (1-2 negative, 3 neutral, 4-5
    positive), trained by the fastText library in ~2 s."""
    import fasttext

    from sentiment.labels import Layout, Policy, map_label, with_prefix
    from sentiment.text import compose, normalize

    folder = tmp_path_factory.mktemp("ternary-model")
    lines = []
    for label, title, body in read_reviews(shared_data / "amazon_review_full" / "train.csv"):
        name = map_label(Layout.FULL, label, Policy.TERNARY)
        lines.append(f"{with_prefix(str(name))} {normalize(compose(title, body))}")
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(
        str(folder / "train.txt"),
        epoch=10,
        lr=0.1,
        dim=10,
        wordNgrams=2,
        minCount=2,
        seed=1,
        thread=1,
        verbose=0,
    )  # type: ignore[arg-type]
    model.save_model(str(folder / layout.MODEL_BIN))
    yield folder


def _with_calibration(source: Path, target: Path, calibration: Calibration) -> Path:
    target.mkdir()
    shutil.copy(source / layout.MODEL_BIN, target / layout.MODEL_BIN)
    (target / layout.CALIBRATION).write_text(json.dumps(calibration.to_dict()))
    return target


def test_a_bare_model_is_uncalibrated(ternary_model_dir: Path) -> None:
    model = load_model(ternary_model_dir)
    assert model.calibration is None
    assert "uncalibrated" in model.derivation
    raw = model.predict_proba(["great", "awful"])
    assert np.array_equal(raw, model.predict_proba(["great", "awful"], raw_scores=True))


def test_calibration_beside_model_bin_is_applied_by_default(
    ternary_model_dir: Path, tmp_path: Path
) -> None:
    # Written in another label order than the model's: loading puts it in the model's.
    calibration = Calibration("vector", 3.0, (0.0, 0.5, -0.5), ("positive", "neutral", "negative"))
    model = load_model(_with_calibration(ternary_model_dir, tmp_path / "m", calibration))
    assert model.calibration is not None
    assert model.calibration.labels == model.classes
    texts = ["meh", "great, i love it", "awful . broke in a day", MIXED_TEXT]
    raw = model.predict_proba(texts, raw_scores=True)
    calibrated = model.predict_proba(texts)
    assert np.allclose(calibrated, model.calibration.apply(raw))
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert calibrated.max() < raw.max()  # T = 3 tempers the sure ones
    # top / predict: the same numbers, one text (the served path) or many, any k.
    for text, row in zip(texts, calibrated, strict=True):
        ((labels, probs),) = model.top([text], k=3)
        assert probs == pytest.approx(sorted(row, reverse=True))
        assert [model.labels.index(label) for label in labels] == list(np.argsort(-row))
        assert model.top([text])[0][1][0] == pytest.approx(row.max())
    many = model.top(texts, k=2)
    assert np.allclose([ps for _, ps in many], -np.sort(-calibrated, axis=1)[:, :2])
    assert model.top(texts[:1], raw_scores=True)[0][1][0] == pytest.approx(raw[0].max(), abs=1e-5)
    assert model.describe()["calibration"]["temperature"] == 3.0


def test_a_malformed_calibration_file_is_a_model_error(
    ternary_model_dir: Path, tmp_path: Path
) -> None:
    folder = _with_calibration(
        ternary_model_dir, tmp_path / "m", Calibration("temperature", 2.0, (0, 0, 0), TERNARY)
    )
    (folder / layout.CALIBRATION).write_text("{not json")
    with pytest.raises(ModelError):
        load_model(folder)


def test_a_three_class_model_answers_four_ways(ternary_model_dir: Path) -> None:
    model = load_model(ternary_model_dir)
    got = model.answers([MIXED_TEXT, "Great product, works perfectly. Love it!", "meh"])
    assert [a.sentiment for a in got[:2]] == ["mixed", "positive"]
    for a in got:
        assert set(a.scores) == set(SENTIMENTS)
        assert sum(a.scores.values()) == pytest.approx(1.0)
    matrix = model.answer_scores([MIXED_TEXT])
    assert matrix.tolist()[0] == pytest.approx([got[0].scores[s] for s in SENTIMENTS])


def test_a_binary_model_answers_four_ways_and_says_how(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir / layout.MODEL_BIN)
    got = model.answers([MIXED_TEXT, "Terrible. Broke after a day. Waste of money."])
    assert got[0].sentiment == "mixed"
    assert got[1].sentiment == "negative"
    assert all(sum(a.scores.values()) == pytest.approx(1.0) for a in got)
    assert model.derivation.startswith("binary model")
    assert "neutral = 2 x min(positive, negative)" in model.derivation
