"""Calibration: fitted on held-out probabilities, applied to every label's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from sentiment.calibration import IDENTITY, Calibration, ece, fit, identity
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
