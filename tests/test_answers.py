"""The four answers (positive, negative, neutral, mixed): rules on written cases, then a real
three-class model and a real binary one, calibrated from a calibration.json beside model.bin."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import text_reference
from conftest import read_reviews
from sentiment import answers, layout
from sentiment.answers import (
    SENTIMENTS,
    combine,
    decide,
    derivation,
    plan,
    polarity,
    sentences,
    weights_for,
)
from sentiment.calibration import Calibration, count_words, fit_file
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


def _answer(texts: list[str], rows: dict[str, list[float]], classes=TERNARY) -> list[str]:
    """The answers (`decide`, the model's weights) for `_scores`."""
    return [SENTIMENTS[i] for i in decide(_scores(texts, rows, classes), weights_for(classes))]


def test_one_clearly_positive_and_one_clearly_negative_sentence_is_mixed() -> None:
    rows = {
        MIXED_TEXT: [0.45, 0.1, 0.45],
        "The screen is gorgeous.": POS,
        "The battery died after two days.": NEG,
    }
    out = _scores([MIXED_TEXT], rows)
    # the neutral side, all mixed (the sentences lean 0.85 each way), weighs 0.6 against 0.54
    assert out[0].tolist() == pytest.approx([0.45, 0.45, 0.0, 0.1])
    assert _answer([MIXED_TEXT], rows) == ["mixed"]


def test_a_text_of_one_sentence_is_neutral_not_mixed() -> None:
    out = _scores(["meh"], {"meh": [0.3, 0.4, 0.3]})
    assert out[0].tolist() == pytest.approx([0.3, 0.3, 0.4, 0.0])
    assert _answer(["meh"], {"meh": [0.3, 0.4, 0.3]}) == ["neutral"]


def test_a_clear_text_keeps_its_side_whatever_its_sentences() -> None:
    """A clearly positive review with one complaint stays positive: the sentences only split
    the neutral side."""
    text = "Love it. Works great. The box was dented."
    rows = {
        text: [0.03, 0.02, 0.95],
        "Love it.": POS,
        "Works great.": POS,
        "The box was dented.": NEG,
    }
    out = _scores([text], rows)
    assert out[0].tolist() == pytest.approx([0.95, 0.03, 0.0, 0.02])
    assert _answer([text], rows) == ["positive"]


def test_tempered_sentences_leaning_both_ways_make_the_neutral_side_mixed() -> None:
    """Short sentences get tempered scores; leaning 0.35 each way (margin 0.2) is enough,
    leaning 0.05 one way is not."""
    text = "The screen is gorgeous. The battery died after two days."
    whole = [0.3, 0.3, 0.4]
    lean = {
        "The screen is gorgeous.": [0.15, 0.35, 0.5],
        "The battery died after two days.": [0.5, 0.35, 0.15],
    }
    assert _answer([text], {text: whole} | lean) == ["mixed"]
    mild = {
        "The screen is gorgeous.": [0.3, 0.35, 0.35],
        "The battery died after two days.": [0.35, 0.35, 0.3],
    }
    out = _scores([text], {text: whole} | mild)
    assert _answer([text], {text: whole} | mild) == ["neutral"]
    assert out[0].tolist() == pytest.approx([0.4, 0.3, 0.3 * 0.75, 0.3 * 0.25])  # m = 0.05 / 0.2


def test_the_neutral_side_is_weighted_in_the_answer() -> None:
    """3-star reviews are rare in training data: a neutral side of 0.2 against 0.7 positive is
    answered neutral (x6: 1.2 > 0.7), of 0.1 not (0.6 < 0.7); a binary model's answer is its
    plain argmax, and its scores' neutral side comes from the ambivalence alone."""
    rows = {"a": [0.1, 0.2, 0.7], "b": [0.2, 0.1, 0.7]}
    assert _answer(["a", "b"], rows) == ["neutral", "positive"]
    binary = ("negative", "positive")
    assert _answer(["c"], {"c": [0.3, 0.7]}, binary) == ["positive"]  # neutral 0.36
    assert _answer(["d"], {"d": [0.45, 0.55]}, binary) == ["neutral"]  # neutral 0.81


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
    rows = {"X one. Y two.": whole, "X one.": sides[0], "Y two.": sides[1]}
    out = _scores(["X one. Y two."], rows)
    assert _answer(["X one. Y two."], rows) == [expected]
    assert out[0, 3] == 0.0


def test_scores_sum_to_one_for_every_text() -> None:
    rng = np.random.default_rng(0)
    texts = ["a", "b. c.", "d! e? f.", "g"]
    p = plan(texts)
    probs = rng.dirichlet(np.ones(3), size=len(p.strings))
    out = combine(p, TERNARY, probs)
    assert out.shape == (4, 4)
    assert np.allclose(out.sum(axis=1), 1.0) and (out >= 0).all()


def test_binary_and_star_models_get_the_four_answers() -> None:
    p = plan(["a", "b", "c"])
    binary = combine(p, ("negative", "positive"), np.array([[0.5, 0.5], [0.01, 0.99], [0.8, 0.2]]))
    # neutral from the ambivalence (2 min)^2 alone: 1, 0.0004, 0.16
    assert np.allclose(binary, [[0, 0, 1, 0], [0.9898, 0.0098, 0.0004, 0], [0.12, 0.72, 0.16, 0]])
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
    got = answers.to_answers(np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.3, 0.1, 0.1]]))
    assert got == [
        answers.Answer("mixed", dict(zip(SENTIMENTS, [0.1, 0.2, 0.3, 0.4], strict=True))),
        # the neutral side (0.2 x 6) outweighs 0.5 positive; neutral and mixed tie: neutral
        answers.Answer("neutral", dict(zip(SENTIMENTS, [0.5, 0.3, 0.1, 0.1], strict=True))),
    ]


@pytest.fixture(scope="module")
def ternary_model_dir(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A real three-class fastText model on the full sample (1-2 negative, 3 neutral, 4-5
    positive), trained by the fastText library in ~2 s on 80% of it; validation.txt holds
    the other 20% (prepared lines) for fitting calibrations."""
    import fasttext

    from sentiment.labels import Layout, Policy, map_label, with_prefix
    from sentiment.text import UNRECORDED_CLEANING, compose, normalize

    folder = tmp_path_factory.mktemp("ternary-model")
    lines = []
    for label, title, body in read_reviews(shared_data / "amazon_review_full" / "train.csv"):
        name = map_label(Layout.FULL, label, Policy.TERNARY)
        lines.append(
            f"{with_prefix(str(name))} {normalize(compose(title, body), UNRECORDED_CLEANING)}"
        )
    cut = len(lines) * 4 // 5
    (folder / "train.txt").write_text("\n".join(lines[:cut]) + "\n")
    (folder / "validation.txt").write_text("\n".join(lines[cut:]) + "\n")
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


def test_a_calibrated_three_class_model_answers_four_ways(
    ternary_model_dir: Path, tmp_path: Path
) -> None:
    bare = load_model(ternary_model_dir)
    calibration = fit_file(bare, ternary_model_dir / "validation.txt")
    assert calibration.method == "length"
    assert calibration.stats["nll_after"] < calibration.stats["nll_before"]
    assert calibration.stats["short_nll_after"] < calibration.stats["short_nll_before"]
    model = load_model(_with_calibration(ternary_model_dir, tmp_path / "m", calibration))
    texts = [MIXED_TEXT, "Great product, works perfectly. Love it!", "meh", "ok"]
    got = model.answers(texts)
    assert got[1].sentiment == "positive"
    for a in got:
        assert set(a.scores) == set(SENTIMENTS)
        assert sum(a.scores.values()) == pytest.approx(1.0)
    # Issue 13: the uncalibrated model says 'meh' and 'ok' are polar at ~1.0; calibrated,
    # a text of one word is not polar at 0.9.
    raw = model.answer_scores(["meh", "ok"], raw_scores=True)
    assert raw[:, :2].max() > 0.9
    for a in got[2:]:
        assert max(a.scores["positive"], a.scores["negative"]) < 0.9
    matrix = model.answer_scores(texts)
    assert matrix.tolist()[0] == pytest.approx([got[0].scores[s] for s in SENTIMENTS])


def test_a_binary_model_answers_four_ways_and_says_how(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir / layout.MODEL_BIN)
    got = model.answers([MIXED_TEXT, "Terrible. Broke after a day. Waste of money.", "meh"])
    assert got[1].sentiment == "negative"
    assert all(sum(a.scores.values()) == pytest.approx(1.0) for a in got)
    assert all(set(a.scores) == set(SENTIMENTS) for a in got)
    assert model.derivation.startswith("binary model")
    assert "neutral only from the ambivalence" in model.derivation
    assert "uncalibrated" in model.derivation


def test_the_endpoint_serves_calibrated_scores_and_raw_ones_on_request(
    ternary_model_dir: Path, tmp_path: Path
) -> None:
    """/invocations applies calibration.json by default (BlazingText's response shape
    unchanged); `"configuration": {"raw_scores": true}` gives the model's own probabilities."""
    import httpx

    from conftest import start_endpoint

    calibration = Calibration("vector", 3.0, (0.0, 0.0, 0.0), TERNARY)
    folder = _with_calibration(ternary_model_dir, tmp_path / "m", calibration)
    model = load_model(folder)
    texts = ["great, i love it", "awful. broke in a day"]
    process, url = start_endpoint(folder, tmp_path / "serve.log")
    try:
        for k in (1, 3):
            calibrated = httpx.post(
                f"{url}/invocations", json={"instances": texts, "configuration": {"k": k}}
            ).json()
            raw = httpx.post(
                f"{url}/invocations",
                json={"instances": texts, "configuration": {"k": k, "raw_scores": True}},
            ).json()
            for got, want in zip(calibrated, model.top(texts, k=k), strict=True):
                assert got["label"] == list(want[0]) and got["prob"] == pytest.approx(want[1])
            for got, want in zip(raw, model.top(texts, k=k, raw_scores=True), strict=True):
                assert got["label"] == list(want[0]) and got["prob"] == pytest.approx(want[1])
            assert calibrated[0]["prob"][0] < raw[0]["prob"][0]
        one = httpx.post(f"{url}/invocations", json={"instances": texts[:1]}).json()
        assert one[0]["prob"] == pytest.approx(calibrated[0]["prob"][:1])
        bad = httpx.post(
            f"{url}/invocations",
            json={"instances": texts, "configuration": {"raw_scores": "yes"}},
        )
        assert bad.status_code == 400 and "raw_scores" in bad.text
    finally:
        process.stop()


def test_evaluate_reports_the_four_answers_with_targets_and_star_table(
    ternary_model_dir: Path, tmp_path: Path, shared_data: Path
) -> None:
    """`sentiment evaluate` on a CSV with star ratings: what each rating was answered, the
    targets with pass/fail, ECE before and after calibration with both reliability plots."""
    from rich.console import Console

    from sentiment.evaluate import evaluate_model

    calibration = fit_file(load_model(ternary_model_dir), ternary_model_dir / "validation.txt")
    folder = _with_calibration(ternary_model_dir, tmp_path / "m", calibration)
    test = tmp_path / "test.csv"
    lines = (shared_data / "amazon_review_full" / "test.csv").read_text().splitlines()
    test.write_text("\n".join(lines[:1500]) + "\n")
    console = Console(record=True, width=120)
    report = evaluate_model(folder, test, tmp_path / "report", console=console)
    section = report["metrics"]["answers"]
    assert section["classes"] == 3 and section["calibrated"]
    stars = section["stars"]
    assert sorted(stars) == [f"{s} stars" for s in range(1, 6)]
    assert sum(row["examples"] for row in stars.values()) == report["test"]["examples"]
    for row in stars.values():
        assert sum(row[s] for s in SENTIMENTS) == pytest.approx(1.0)
    # Shares in the targets are the star table's own.
    ones = stars["1 stars"]
    targets = {t["name"]: t for t in section["targets"]}
    assert targets["1-star reviews answered negative"]["value"] == pytest.approx(ones["negative"])
    three = stars["3 stars"]["neutral"] + stars["3 stars"]["mixed"]
    assert targets["3-star reviews answered neutral or mixed"]["value"] == pytest.approx(three)
    assert len(targets) == 6 and all(isinstance(t["passed"], bool) for t in targets.values())
    assert section["ece_after"] < section["ece_before"]
    assert "calibration error (ECE), three classes" in console.export_text()
    html = (tmp_path / "report" / "report.html").read_text()
    assert "What each star rating was answered" in html and "answers_reliability_after.png" in html
    assert (tmp_path / "report" / "answers_reliability_before.png").is_file()


@pytest.fixture(scope="module")
def shared_test_reviews(shared_data: Path) -> list[str]:
    """Every review of both shared test files, as raw texts: the body, and title + body on
    lines of their own."""
    texts = []
    for dataset in ("amazon_review_polarity", "amazon_review_full"):
        for _label, title, body in read_reviews(shared_data / dataset / "test.csv"):
            texts += [body, f"{title}\n{body}"]
    return texts


def test_sentences_split_as_specified_on_every_shared_review(
    shared_test_reviews: list[str],
) -> None:
    several = 0
    for text in shared_test_reviews:
        specified = text_reference.sentences(text)
        assert sentences(text) == specified, text
        several += len(specified) > 1
    assert several > len(shared_test_reviews) // 2


def test_sentences_split_as_specified_on_generated_texts() -> None:
    """The compiled splitter against the regular expressions on texts made of what the rule
    looks at: sentence ends, closers, semicolons, line breaks, Unicode spaces and words (with
    `\\w` beyond ASCII), in any order, and any text at all."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    pieces = st.sampled_from(
        [".", "!", "?", "...", ";", "\n", "\r", "\r\n", " ", "  ", "\t", "\u00a0", "\u2003",
         "\x1c", "\x85", '"', "'", ")", "]", "(", "a", "Go", "_", "7", "\u00e9t\u00e9", "\u0663",
         "\u4e2d", ":)", "-", "\ud800"]
    )  # fmt: skip
    texts = st.lists(pieces, max_size=30).map("".join) | st.text(max_size=60)

    @settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=texts)
    def check(text: str) -> None:
        assert sentences(text) == text_reference.sentences(text)

    check()


@pytest.mark.parametrize("kind", ["ternary", "binary"])
def test_sentences_are_read_only_where_they_can_change_the_scores(
    kind: str,
    ternary_model_dir: Path,
    tiny_model_dir: Path,
    shared_test_reviews: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the full rule (every text's sentences scored, no floor), on every shared test
    review: the same scores where the neutral side is above SENTENCE_FLOOR, neutral and mixed
    within the floor elsewhere (mixed 0 there), the same answers everywhere."""
    model = load_model(ternary_model_dir if kind == "ternary" else tiny_model_dir / "model.bin")
    texts = shared_test_reviews
    got = model.answer_scores(texts)
    with monkeypatch.context() as patched:
        patched.setattr(answers, "SENTENCE_FLOOR", -1.0)  # no text below it: the full rule
        full = plan(texts)
        expected = combine(full, model.classes, model.predict_proba(full.strings))
    side = expected[:, answers.NEUTRAL] + expected[:, answers.MIXED]
    above = side > answers.SENTENCE_FLOOR
    assert 0 < above.sum() < len(texts)
    assert np.abs(got[above] - expected[above]).max() <= 1e-12
    assert np.abs(got[:, :2] - expected[:, :2]).max() <= 1e-12
    assert np.abs(got - expected).max() <= answers.SENTENCE_FLOOR
    assert (got[~above, answers.MIXED] == 0).all()
    assert expected[~above, answers.MIXED].max() > 0  # the floor did change some scores
    weights = weights_for(model.classes)
    assert (decide(got, weights) == decide(expected, weights)).all()


# Texts the compiled normalization leaves to Python (an HTML entity, a lower case that is not
# one character, a lone surrogate), to the endings of the rule, or to neither.
_ODD_TEXTS = [
    "Fish &amp; chips. Awful!",
    "İSTANBUL WAS GREAT. ΣΑΣ bad",
    "ok\ud800. bad; good",
    "",
    "...",
]


@pytest.mark.parametrize("kind", ["ternary calibrated", "binary"])
def test_answer_scores_equal_the_plain_path_bit_for_bit(
    kind: str,
    ternary_model_dir: Path,
    tiny_model_dir: Path,
    shared_test_reviews: list[str],
    tmp_path: Path,
) -> None:
    """The served path (the compiled splitter; texts and sentences normalized and predicted in
    one C call; one text without numpy) gives exactly the scores of the plain one: the
    regular expressions' sentences, each string through `normalize_many` and the core's `top`,
    the calibration and `combine` in numpy."""
    if kind == "binary":
        model = load_model(tiny_model_dir / "model.bin")
    else:
        validation = ternary_model_dir / "validation.txt"
        calibration = fit_file(load_model(ternary_model_dir), validation)
        model = load_model(_with_calibration(ternary_model_dir, tmp_path / "m", calibration))
    assert model._native is not None
    texts = shared_test_reviews[:3000] + _ODD_TEXTS
    got_whole, got = model.scored(texts)

    def plain_proba(strings: list[str]) -> np.ndarray:
        prepared = model.prepare_texts(strings)  # normalize_many, then the core's top
        if model.calibration is None:
            return model._raw_proba(prepared, raw=True)
        assert model.calibration.inputs == "log"  # what fit_file fits
        return model.calibration.apply(model.log_proba(prepared, raw=True), count_words(strings))

    whole = plain_proba(texts)
    strings, owner, starts = list(texts), [], []
    for i in np.flatnonzero(answers.needs_sentences(model.classes, whole)).tolist():
        parts = text_reference.sentences(texts[i])
        if len(parts) > 1:
            starts.append(len(owner))
            owner += [i] * len(parts)
            strings += parts
    p = answers.Plan(strings, len(texts), np.array(owner, np.int64), np.array(starts, np.int64))
    assert p.strings == plan(texts, only=answers.needs_sentences(model.classes, whole)).strings
    expected = combine(
        p, model.classes, np.concatenate([whole, plain_proba(strings[len(texts) :])])
    )
    assert np.array_equal(got_whole, whole)
    assert np.array_equal(got, expected)
    for i in [*range(0, 3000, 15), *range(3000, len(texts))]:  # one text a call
        one_whole, one = model.scored([texts[i]])
        assert np.array_equal(one_whole[0], whole[i]) and np.array_equal(one[0], expected[i]), i
    weights = weights_for(model.classes)
    assert [answers.decided(expected[i : i + 1], weights)[0] for i in range(len(texts))] == (
        decide(expected, weights).tolist()
    )  # one row in plain Python, as numpy's
    # The endpoint's answers: each text predicted once for its top labels and its scores.
    for k in (1, 2, 100):
        for raw_scores in (False, True):
            tops, scores = model.top_and_scores(texts, k, raw_scores=raw_scores)
            assert tops == model.top(texts, k, raw_scores=raw_scores), (k, raw_scores)
            assert np.array_equal(scores, model.answer_scores(texts, raw_scores=raw_scores))
            # With the answers (made by the core with the scores, for its own probabilities).
            tops_too, scores_too, decided = model.top_and_answers(texts, k, raw_scores=raw_scores)
            assert tops_too == tops and np.array_equal(scores_too, scores)
            assert decided == decide(scores, weights).tolist(), (k, raw_scores)
            # The core answers texts it leaves to Python (an HTML entity) as numpy does.
            probs = model.predict_proba(texts, raw_scores=True)
            left = [i for i, t in enumerate(texts) if "&" in t]
            assert len(left) > 10
            made = model._native.answers(
                list(texts), probs, answers.sides_of(model.answer_labels), 2.0,
                answers.SENTENCE_FLOOR, answers.MIXED_MARGIN, np.ones(3), np.zeros((len(texts), 4)),
            )  # fmt: skip
            assert [made[i] for i in left].count(None) > 10
            # One text a request: the text predicted once for both where `top` makes the same
            # call, its top labels those of `top` alone, its scores the batch's.
            for i in [*range(0, 3000, 50), *range(3000, len(texts))]:
                one_top, one = model.top_and_scores([texts[i]], k, raw_scores=raw_scores)
                assert one_top == model.top([texts[i]], k, raw_scores=raw_scores), (i, k)
                assert np.array_equal(one[0], scores[i]), (i, k, raw_scores)


@pytest.mark.parametrize(
    "classes",
    [
        ("negative", "positive"),
        ("positive", "negative"),
        ("negative", "neutral", "positive"),
        ("neutral", "positive", "negative"),
        ("1_star", "2_stars", "3_stars", "4_stars", "5_stars"),
    ],
)
def test_one_text_leans_are_numpys(classes: tuple[str, ...]) -> None:
    """`combine_one` (the one-review request, its sentences' leans in plain Python) gives
    exactly `combine`'s floats for every label set, rows of zeros and sure ones included."""
    rng = np.random.default_rng(7)
    # Leaning by less than MIXED_MARGIN, so that mixed is not clipped to 1.
    rows = 0.9 / len(classes) + 0.1 * rng.dirichlet(np.ones(len(classes)), size=200)
    rows *= rng.uniform(0.2, 1.0, (200, 1))
    rows[:3] = 0.0
    text = [1 / len(classes)] * len(classes)  # neutral enough for the sentences to count
    mixed = []
    for parts in (rows[:10], rows[10:40], rows[100:102]):
        p = answers.Plan(
            ["t"] + ["s"] * len(parts), 1, np.zeros(len(parts), np.int64), np.zeros(1, np.int64)
        )
        expected = combine(p, classes, np.vstack([[text], parts]))[0].tolist()
        assert answers.combine_one(classes, text, parts.tolist()) == expected
        mixed.append(expected[answers.MIXED])
    assert 0 < max(mixed) < 1  # decided by the leans, not clipped


def test_the_core_reads_no_sentence_past_the_one_that_makes_a_text_mixed(
    tiny_model_dir: Path,
) -> None:
    """The engine's `answers` (the served path of an uncalibrated model) stops at the sentence
    that makes the measure 1: a sentence the compiled normalization leaves to Python (a lone
    surrogate) after it is never read, the same sentence before it sends the text to Python."""
    model = load_model(tiny_model_dir / "model.bin")
    core, labels = model._native, model.answer_labels
    sides = answers.sides_of(labels)
    good, bad, odd = (
        "Great product, I love it.",
        "Terrible, it broke, a waste of money.",
        "Odd \ud800.",
    )
    leaning = answers.polarity(labels, model.predict_proba([good, bad]))
    lean = leaning[:, answers.POSITIVE] - leaning[:, answers.NEGATIVE]
    assert lean[0] >= answers.MIXED_MARGIN and -lean[1] >= answers.MIXED_MARGIN, lean  # premise
    texts = [f"{good} {bad} {odd}", f"{odd} {good} {bad}", f"{good} {good}", good]
    probs = model.predict_proba([good] * 4)  # every text read (floor -1): a neutral side of 1/2
    scores = np.full((4, 4), -1.0)
    made = core.answers(texts, probs, sides, 2.0, -1.0, answers.MIXED_MARGIN, np.ones(3), scores)
    assert made[1] is None and (scores[1] == -1.0).all()  # left to Python, its row untouched
    side = scores[:, answers.NEUTRAL] + scores[:, answers.MIXED]
    assert scores[0, answers.MIXED] == side[0] > 0  # mixed all through: the odd one never read
    assert scores[2, answers.MIXED] == scores[3, answers.MIXED] == 0.0  # one side; one sentence
    # The texts left to Python get the plain path's scores.
    whole = model.predict_proba(texts)
    plain = answers.scores_of(texts, labels, whole, model.predict_proba)
    assert np.array_equal(model.answer_scores(texts), plain)


def test_the_core_refuses_what_it_cannot_read(tiny_model_dir: Path) -> None:
    """`answers` checks its arguments: a clear error, no crash."""
    from sentiment.engine.predictor import build_predictor
    from sentiment.text import kernel_options
    from sentiment.text_kernel import normalizer, tables

    model = load_model(tiny_model_dir / "model.bin")
    core = model._native
    sides = answers.sides_of(model.answer_labels)
    probs, weights, scores = np.zeros((1, len(sides))), np.ones(3), np.zeros((1, 4))
    with pytest.raises(ValueError, match="cells"):
        core.answers(["a. b."], probs, sides, 2.0, 0.01, 0.2, np.ones(2), scores)
    with pytest.raises(ValueError, match="cells"):
        core.answers(["a. b.", "c"], probs, sides, 2.0, 0.01, 0.2, weights, scores)
    with pytest.raises(ValueError, match="sides for"):
        core.answers(["a. b."], probs, sides + b"\x00", 2.0, 0.01, 0.2, weights, scores)
    with pytest.raises(ValueError, match="side is 0, 1 or 2"):
        core.answers(["a. b."], probs, b"\x00\x03", 2.0, 0.01, 0.2, weights, scores)
    with pytest.raises(ValueError, match="margin"):
        core.answers(["a. b."], probs, sides, 2.0, 0.01, 0.0, weights, scores)
    with pytest.raises(TypeError, match="texts must be str"):
        core.answers([b"a. b."], probs, sides, 2.0, -1.0, 0.2, weights, scores)
    with pytest.raises(TypeError, match="splitter"):
        core.set_splitter(object())
    even = np.full((1, len(sides)), 0.5)  # as positive as negative: all of it neutral
    assert core.answers(["a. b."], even, sides, 2.0, 0.01, 0.2, weights, scores) in ([2], [3])
    assert scores[0, 0] == scores[0, 1] == 0.0 and scores[0, 2] + scores[0, 3] == 1.0
    bare = build_predictor(model._bin)
    with pytest.raises(RuntimeError, match="no model or no normalizer"):
        bare.answers(["a. b."], even, sides, 2.0, 0.01, 0.2, weights, scores)
    bare.set_normalizer(normalizer(), *tables(), kernel_options(model.preprocessing.cleaning))
    with pytest.raises(RuntimeError, match="no sentence splitter"):
        bare.answers(["a. b."], even, sides, 2.0, 0.01, 0.2, weights, scores)
