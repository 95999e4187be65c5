"""Calibration: fitted on held-out probabilities, applied to every label's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment.calibration import (
    IDENTITY,
    Calibration,
    count_words,
    ece,
    fit,
    fit_length,
    identity,
    prior_shift,
)
from sentiment.errors import ModelError

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
    flipped = c.reordered(("positive", "neutral", "negative"))
    assert flipped.bias == (0.5, -1.0, 0.5)[::-1]
    probs = np.array([[0.2, 0.3, 0.5]])
    assert np.allclose(flipped.apply(probs[:, ::-1])[:, ::-1], c.apply(probs))
    with pytest.raises(ModelError):
        c.reordered(("negative", "positive"))


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"method": "magic", "temperature": 1, "labels": ["a"]},
        {"method": "temperature", "temperature": -1, "labels": ["a"]},
        {"method": "vector", "temperature": 1, "labels": ["a", "b"], "bias": [1.0]},
        {"method": "vector", "temperature": "hot", "labels": ["a"]},
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
