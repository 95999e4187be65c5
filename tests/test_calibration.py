"""Calibration: fitted on held-out probabilities (or log-probabilities), applied to every
label's; then a model trained by our engine, calibrated as a training job does."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import read_reviews, small_params
from sentiment import layout
from sentiment.calibration import (
    IDENTITY,
    Calibration,
    count_words,
    ece,
    fit,
    fit_file,
    fit_length,
    identity,
    measure,
    prior_shift,
)
from sentiment.errors import ModelError
from sentiment.labels import Layout, Policy, map_label
from sentiment.model import Model, load_model
from sentiment.text import compose
from test_answers import ternary_model_dir  # noqa: F401 - a fixture, reused

LABELS = ("negative", "neutral", "positive")


def _overconfident(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities `temperature` times too sharp: labels drawn from softmax(z), model says
    softmax(z * temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3)) * 2
    true = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(true, axis=1)).sum(axis=1)
    sharp = np.exp(z * temperature)
    return sharp / sharp.sum(axis=1, keepdims=True), y


def test_temperature_fit_finds_the_overconfidence_and_lowers_nll_and_ece() -> None:
    probs, y = _overconfident(20_000, 3.0)
    c = fit(probs, y, LABELS)
    assert c.method == "temperature"
    assert c.temperature == pytest.approx(3.0, rel=0.05)
    assert c.stats["nll_after"] < c.stats["nll_before"] - 0.1
    assert c.stats["ece_before"] > 0.1
    assert c.stats["ece_after"] < 0.02
    assert ece(y, c.apply(probs)) == pytest.approx(c.stats["ece_after"])


def test_vector_fit_recovers_a_shifted_prior() -> None:
    """A model that under-predicts the neutral class by e^1.5: the bias puts it back."""
    probs, y = _overconfident(20_000, 1.0, seed=1)
    shifted = probs * np.array([1.0, np.exp(-1.5), 1.0])
    shifted /= shifted.sum(axis=1, keepdims=True)
    c = fit(shifted, y, LABELS, method="vector")
    assert c.temperature == pytest.approx(1.0, rel=0.05)
    assert c.bias[1] - (c.bias[0] + c.bias[2]) / 2 == pytest.approx(1.5, abs=0.1)
    assert np.allclose(c.apply(shifted), probs, atol=0.03)


def test_apply_gives_rows_summing_to_one_even_with_zeros() -> None:
    c = Calibration("vector", 2.0, (0.1, -0.2, 0.1), LABELS)
    probs = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5], [1.00001, 1e-5, 1e-5]])
    out = c.apply(probs)
    assert np.all(np.isfinite(out)) and np.allclose(out.sum(axis=1), 1.0)
    assert out[0, 0] < 1.0  # a "sure" 1.0 is tempered
    # The one-row form (labels in any order) gives the same numbers.
    row = c.apply_one([2, 0, 1], [0.5, 0.2, 0.3])
    assert row == pytest.approx([out[1, 2], out[1, 0], out[1, 1]])


def test_identity_changes_nothing_but_normalizing() -> None:
    probs = np.array([[0.7, 0.2, 0.1]])
    assert np.allclose(identity(LABELS).apply(probs), probs)
    assert IDENTITY.is_identity and fit(probs, np.array([0]), LABELS, method="identity").is_identity


def test_round_trip_and_reordering() -> None:
    c = Calibration("vector", 1.5, (0.5, -1.0, 0.5), LABELS, {"examples": 3})
    again = Calibration.from_dict(c.to_dict())
    assert again == c and again.stats == {"examples": 3}
    logs = replace(c, inputs="log", length=16.0)
    assert logs.to_dict()["inputs"] == "log" and Calibration.from_dict(logs.to_dict()) == logs
    # A file written before "log" inputs has no `inputs`: it reads p + 1e-5, as fitted.
    old = {k: v for k, v in c.to_dict().items() if k != "inputs"}
    assert Calibration.from_dict(old).inputs == "probs"
    assert logs.reordered(("positive", "neutral", "negative")).inputs == "log"
    flipped = c.reordered(("positive", "neutral", "negative"))
    assert flipped.bias == (0.5, -1.0, 0.5)[::-1]
    probs = np.array([[0.2, 0.3, 0.5]])
    assert np.allclose(flipped.apply(probs[:, ::-1])[:, ::-1], c.apply(probs))
    with pytest.raises(ModelError):
        c.reordered(("negative", "positive"))
    # With the fit of fastText's reported scores (for a BlazingText host): kept, reordered.
    both = replace(logs, reported=c)
    again = Calibration.from_dict(json.loads(json.dumps(both.to_dict())))
    assert again.reported == c and again.for_reported() == c and c.for_reported() is c
    assert logs.for_reported() is None  # log inputs alone: nothing for reported scores
    turned = again.reordered(("positive", "neutral", "negative"))
    assert turned.reported is not None and turned.reported.bias == (0.5, -1.0, 0.5)[::-1]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"method": "magic", "temperature": 1, "labels": ["a"]},
        {"method": "temperature", "temperature": -1, "labels": ["a"]},
        {"method": "vector", "temperature": 1, "labels": ["a", "b"], "bias": [1.0]},
        {"method": "vector", "temperature": "hot", "labels": ["a"]},
        {"method": "vector", "temperature": 1, "labels": ["a"], "inputs": "logits"},
        {"method": "vector", "temperature": 1, "labels": ["a"], "reported": [1]},
        {"method": "vector", "temperature": 1, "labels": ["a"], "reported": {"labels": ["a"]}},
        {  # the reported fit reads p + 1e-5, of the same labels
            "method": "vector",
            "temperature": 1,
            "labels": ["a"],
            "inputs": "log",
            "reported": {"method": "vector", "temperature": 1, "labels": ["b"]},
        },
        {
            "method": "vector",
            "temperature": 1,
            "labels": ["a"],
            "inputs": "log",
            "reported": {"method": "vector", "temperature": 1, "labels": ["a"], "inputs": "log"},
        },
    ],
)
def test_malformed_calibrations_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ModelError):
        Calibration.from_dict(data)


def test_length_shrinkage_is_fitted_on_short_texts_and_spares_long_ones() -> None:
    """Short texts whose model scores are as sharp as a review's but right only 60% of the
    time: the fit finds a shrinkage, which leaves a text of 200 words nearly as it was."""
    rng = np.random.default_rng(2)
    n = 6000
    y = rng.integers(0, 2, n)
    right = rng.random(n) < 0.6
    side = np.where(right, y, 1 - y)
    probs = np.full((n, 2), 0.01)
    probs[np.arange(n), side] = 0.99
    words = rng.choice([1.0, 2.0, 3.0], n)
    base = Calibration("vector", 1.0, (0.0, 0.0), ("negative", "positive"))
    c = fit_length(base, probs, y, words)
    assert c.method == "length" and c.length > 0
    assert c.stats["short_nll_after"] < c.stats["short_nll_before"] - 0.5
    sharp = np.array([[0.01, 0.99]])
    assert c.apply(sharp, np.array([1.0]))[0, 1] < 0.75
    assert c.apply(sharp, np.array([200.0]))[0, 1] > 0.97
    row = c.apply_one([1, 0], [0.99, 0.01], 2)
    assert row[0] == pytest.approx(c.apply(sharp, np.array([2.0]))[0, 1])


def test_words_are_counted_alike_in_raw_and_normalized_text() -> None:
    raw = count_words(["great, but bad.", "meh", "I   paid 12 dollars", " ", ""])
    normalized = count_words(["great , but bad .", "meh", "i paid _num_ dollars"], normalized=True)
    assert raw.tolist() == [3, 1, 6, 0, 0]  # spaces + 1: runs of spaces count (cheap, see why)
    assert normalized.tolist() == [3, 1, 4]


def test_prior_shift_moves_a_class_to_its_share_at_large() -> None:
    """A validation split with 2% neutral rows, where reviews at large hold 8%: the neutral
    bias rises by log(0.08 / 0.02) less the others' log((1 - 0.08) / (1 - 0.02))."""
    c = Calibration("vector", 1.0, (0.0, 0.0, 0.0), LABELS)
    shifted = prior_shift(c, np.array([0.49, 0.02, 0.49]), {"neutral": 0.08})
    gap = shifted.bias[1] - shifted.bias[0]
    assert gap == pytest.approx(np.log(0.08 / 0.02) - np.log(0.46 / 0.49))
    assert shifted.stats["prior_shift"]["neutral"] == pytest.approx(np.log(4))
    # A model without the class, or a split without any of its rows: unchanged.
    binary = Calibration("vector", 1.0, (0.0, 0.0), ("negative", "positive"))
    assert prior_shift(binary, np.array([0.5, 0.5]), {"neutral": 0.08}) is binary
    assert prior_shift(c, np.array([0.5, 0.0, 0.5]), {"neutral": 0.08}) is c


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def test_log_inputs_are_floored_after_the_length_shrinkage() -> None:
    """softmax(max(log p * n / (n + n0), log 1e-5) / T + bias): two one-word texts the model
    is sure of at gaps of 40 and 100 (both (1, 1e-5) as fastText reports them) keep apart; a
    review of 500 words reads as the same calibration on fastText's p + 1e-5 reads it."""
    c = Calibration("length", 2.0, (0.3, -0.3), ("negative", "positive"), length=8.0, inputs="log")
    logp = np.array([[0.0, -40.0], [0.0, -100.0], [0.0, -40.0], [-2.0, -0.145]])
    words = np.array([1.0, 1.0, 500.0, 500.0])
    shrink = (words / (words + 8.0))[:, None]
    expected = _softmax(np.maximum(logp * shrink, np.log(1e-5)) / 2.0 + np.array([0.3, -0.3]))
    got = c.apply(logp, words)
    assert np.allclose(got, expected, rtol=0, atol=1e-12)
    assert got[1, 0] > got[0, 0] + 0.05  # 0.998 and 0.944: -100 / 9, -40 / 9 above the floor
    fasttexts = np.minimum(np.exp(logp) + 1e-5, 1.0)
    today = replace(c, inputs="probs")
    assert np.allclose(today.apply(fasttexts[:2], words[:2]), today.apply(fasttexts[:1], [1.0]))
    assert np.allclose(got[2:], today.apply(fasttexts[2:], words[2:]), atol=1e-3)
    for row, values, n in zip(got, logp, words, strict=True):  # the one-row form, any order
        assert c.apply_one([1, 0], [values[1], values[0]], int(n)) == pytest.approx(row[::-1])
    sharp = replace(c, temperature=1e-4)  # exp(log p / T) underflows: apply_one copes
    assert sharp.apply_one([0, 1], [-0.7, -0.69], 500) == pytest.approx(
        sharp.apply(np.array([[-0.7, -0.69]]), np.array([500.0]))[0].tolist()
    )
    plain = identity(("negative", "positive"), "log")  # uncalibrated: the exact probabilities
    assert np.allclose(plain.apply(logp), np.exp(logp) / np.exp(logp).sum(axis=1, keepdims=True))
    assert plain.apply_one([0, 1], [0.0, -40.0]) == pytest.approx(plain.apply(logp[:1])[0])


def test_the_length_term_fades_out_over_a_reviews_length() -> None:
    """n / (n + n0 exp(-n / L)): a one-word text is tempered as by n0 alone, a review of 300
    words is read as the vector scaling reads it; batch and one-row forms agree, and the
    scale round-trips (absent from a file written before it: none)."""
    c = Calibration(
        "length", 2.0, (0.3, -0.3), ("negative", "positive"), length=16.0, inputs="log",
        length_scale=60.0,
    )  # fmt: skip
    logp = np.array([[0.0, -40.0], [0.0, -40.0], [-0.05, -3.0]])
    words = np.array([1.0, 300.0, 300.0])
    factor = words / (words + 16.0 * np.exp(-words / 60.0))
    assert factor[0] == pytest.approx(1 / (1 + 16 * np.exp(-1 / 60)))
    assert factor[1] > 0.999  # n / (n + n0) alone: 0.95
    expected = _softmax(np.maximum(logp * factor[:, None], np.log(1e-5)) / 2.0 + [0.3, -0.3])
    got = c.apply(logp, words)
    assert np.allclose(got, expected, rtol=0, atol=1e-12)
    no_length = replace(c, method="vector", length=0.0, length_scale=0.0)
    assert np.allclose(got[1:], no_length.apply(logp[1:]), atol=1e-3)
    for row, values, n in zip(got, logp, words, strict=True):
        assert c.apply_one([0, 1], list(values), int(n)) == pytest.approx(row.tolist(), abs=1e-12)
    assert Calibration.from_dict(c.to_dict()) == c
    older = {k: v for k, v in c.to_dict().items() if k != "length_scale"}
    assert Calibration.from_dict(older).length_scale == 0.0


def test_fitting_log_inputs_finds_the_overconfidence_too() -> None:
    probs, y = _overconfident(20_000, 3.0)
    c = fit(np.log(probs), y, LABELS, method="vector", inputs="log")
    assert c.inputs == "log" and c.temperature == pytest.approx(3.0, rel=0.05)
    assert c.stats["nll_after"] < c.stats["nll_before"] - 0.1
    assert c.stats["ece_after"] < 0.02


# One-word texts that models trained on the shared samples are sure of: fastText's p + 1e-5
# reads each of them (1, 1e-5, 1e-5).
WORDS = ["terrible", "ok", "great", "fine"]


@pytest.fixture(scope="module")
def ours(
    ternary_model_dir: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """A three-class model trained by our engine on the full sample (1.2 s), as sure of one
    word as `make run`'s (logit gaps 23-123 on WORDS), calibrated by `fit_file` as a training
    job calibrates (`train.job`) on its validation lines; a folder."""
    from sentiment.engine import fit as train

    folder = tmp_path_factory.mktemp("ours")
    result = train(ternary_model_dir / "train.txt", None, small_params(lr=0.5, epochs=10))
    result.trainer.save_bin(folder / layout.MODEL_BIN)
    result.trainer.close()
    calibration = fit_file(load_model(folder), ternary_model_dir / "validation.txt")
    (folder / layout.CALIBRATION).write_text(json.dumps(calibration.to_dict()))
    yield folder


def _by_label(model: Model, rows: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(model.classes, row.tolist(), strict=True)) for row in rows]


def test_short_texts_the_model_is_sure_of_keep_what_their_words_say(ours: Path) -> None:
    """Calibrated on p + 1e-5, 'terrible' and 'ok' got one score and 'great' and 'fine'
    another (the same (1, 1e-5, 1e-5) in); on the exact log-probabilities they differ."""
    model = load_model(ours)
    calibration = model.calibration
    assert calibration is not None and calibration.inputs == "log"
    assert json.loads((ours / layout.CALIBRATION).read_text())["inputs"] == "log"
    raw = model.predict_proba(WORDS, raw_scores=True)
    assert np.allclose(np.sort(raw, axis=1)[:, :2], 1e-5, atol=1e-6)
    w = count_words(WORDS)
    before = _by_label(model, replace(calibration, inputs="probs").apply(raw, w))
    assert before[0] == pytest.approx(before[1]) and before[2] == pytest.approx(before[3])
    terrible, ok, great, fine = _by_label(model, model.predict_proba(WORDS))
    assert terrible["negative"] > ok["negative"] + 0.1
    assert great["positive"] > fine["positive"] + 0.1
    assert max(ok.values()) < 0.9 and max(fine.values()) < 0.9  # one word: not sure
    # Every calibrated path gives these scores: one text (the served request) or a batch.
    expected = model.predict_proba(WORDS)
    for text, row in zip(WORDS, expected, strict=True):
        ((labels, probs),) = model.top([text], k=3)
        assert dict(zip(labels, probs, strict=True)) == pytest.approx(
            dict(zip(model.labels, row.tolist(), strict=True))
        )
        whole, _ = model.scored([text])
        assert whole[0] == pytest.approx(row)
        tops, scores = model.top_and_scores([text], k=3)
        assert tops == [(labels, probs)] and scores[0] == pytest.approx(
            model.answer_scores([text])[0]
        )
    tops, scores = model.top_and_scores(WORDS, k=1)
    assert [p[0] for _, p in tops] == pytest.approx(expected.max(axis=1).tolist())
    assert scores == pytest.approx(model.answer_scores(WORDS))


def test_an_old_calibration_file_keeps_its_scores(ours: Path, tmp_path: Path) -> None:
    """calibration.json without `inputs` (model.tar.gz files fitted before): exactly today's
    softmax(log(max(p + 1e-5, 1e-7)) * n / (n + n0) / T + bias), and no second predictor."""
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(ours / layout.MODEL_BIN, folder / layout.MODEL_BIN)
    data = {"method": "length", "temperature": 1.84, "bias": [0.26, 0.42, -0.68], "length": 8.0}
    data["labels"] = list(load_model(ours).classes)
    (folder / layout.CALIBRATION).write_text(json.dumps(data))
    model = load_model(folder)
    assert model.calibration is not None and model.calibration.inputs == "probs"
    assert model._native_log is None
    texts = [*WORDS, "meh", "The product arrived on Tuesday.", "Broke after a day. Awful."]
    raw = model.predict_proba(texts, raw_scores=True)
    scale = 1 / 1.84 * (count_words(texts) / (count_words(texts) + 8.0))[:, None]
    expected = _softmax(np.log(np.maximum(raw, 1e-7)) * scale + np.array(data["bias"]))
    assert np.allclose(model.predict_proba(texts), expected, rtol=0, atol=1e-12)
    for text, row in zip(texts, expected, strict=True):
        ((labels, probs),) = model.top([text], k=3)
        assert [model.labels.index(label) for label in labels] == list(np.argsort(-row))
        assert probs == pytest.approx(sorted(row, reverse=True), rel=0, abs=1e-12)
    terrible, ok, great, fine = _by_label(model, model.predict_proba(WORDS))
    assert terrible == pytest.approx(ok) and great == pytest.approx(fine)  # as they were


def test_the_fit_of_reported_scores_calibrates_what_a_blazingtext_host_answers(
    ours: Path, shared_data: Path
) -> None:
    """A training job's calibration holds a second fit, on fastText's reported p + 1e-5 (what
    SageMaker's BlazingText container answers), which calibrates those scores on held-out rows:
    lower NLL and ECE than they have raw, near the exact log-probabilities' fit."""
    model = load_model(ours)
    calibration = model.calibration
    assert calibration is not None and calibration.reported is not None
    reported = calibration.for_reported()
    assert reported is calibration.reported and reported.inputs == "probs"
    assert reported.method == "length" and reported.stats["ece_after"] < 0.05
    stored = json.loads((ours / layout.CALIBRATION).read_text())["reported"]
    assert stored["inputs"] == "probs" and Calibration.from_dict(stored) == reported
    # Held-out rows: the shared full test (the model saw the train file alone).
    rows = list(read_reviews(shared_data / "amazon_review_full" / "test.csv"))[:3000]
    texts = [compose(title, body) for _, title, body in rows]
    names = [map_label(Layout.FULL, label, Policy.TERNARY) for label, _, _ in rows]
    y = np.array([model.classes.index(str(name)) for name in names])
    raw = model.predict_proba(texts, raw_scores=True)
    words = count_words(texts)
    scored = measure(reported, raw, y, words)
    assert scored["nll_after"] < scored["nll_before"] and scored["ece_after"] < scored["ece_before"]
    exact = measure(calibration, model.log_proba(texts), y, words)
    assert scored["ece_after"] < exact["ece_after"] + 0.02
