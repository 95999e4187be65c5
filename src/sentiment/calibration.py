"""Calibrating a model's probabilities so a score of 0.9 is right 9 times in 10.

fastText's probabilities are a softmax over its scores, so `log p` is the vector of logits up to
a per-row constant, which a softmax ignores. A `Calibration` rescales them:

    calibrated = softmax(log(p) / T + bias)

with one temperature `T` for every label (temperature scaling, Guo et al. 2017) and, for
`method="vector"`, one bias per label (a shift of the prior: the rare class's share can be set
right without retraining). Both are fitted on a training job's validation split by minimizing
the negative log-likelihood; the problem is convex in (1/T, bias), so Newton's method finds the
optimum in a few steps with numpy alone.

A training job stores the fit as `calibration.json` beside `model.bin` in model.tar.gz
(SageMaker's container ignores it); `sentiment.model` applies it to every prediction unless
raw scores are asked for. A model without the file is uncalibrated (`IDENTITY`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sentiment.errors import ModelError

METHODS = ("identity", "temperature", "vector")
# fastText reports p + 1e-5 and a softmax can underflow to 0: log needs a floor.
_FLOOR = 1e-7


@dataclass(frozen=True)
class Calibration:
    """A fitted calibration: `temperature`, and one `bias` per label in `labels` order (the
    model's label order, names without the `__label__` prefix). `stats` records the fit
    (examples, NLL and ECE before and after) for reports."""

    method: str
    temperature: float
    bias: tuple[float, ...]
    labels: tuple[str, ...]
    stats: dict[str, Any] = field(default_factory=dict, compare=False)
    # For `apply_one`: 1/T and exp(bias), so a row costs one power and one product per label.
    _inv_t: float = field(init=False, repr=False, compare=False)
    _weights: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inv_t", 1.0 / self.temperature)
        object.__setattr__(self, "_weights", tuple(math.exp(b) for b in self.bias))

    @property
    def is_identity(self) -> bool:
        return self.temperature == 1.0 and not any(self.bias)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """(n, C) probabilities of every label, in `labels` order -> calibrated, rows sum to 1."""
        probs = np.asarray(probs, dtype=np.float64)
        if self.is_identity:
            return probs / np.maximum(probs.sum(axis=1, keepdims=True), _FLOOR)
        z = np.log(np.maximum(probs, _FLOOR)) * (1.0 / self.temperature)
        if any(self.bias):
            z += np.asarray(self.bias)
        return _softmax(z)

    def apply_one(self, ids: Sequence[int], probs: Sequence[float]) -> list[float]:
        """One row given as label ids and their probabilities (every label, any order), in
        plain Python: for one text it costs less than numpy's call overhead (softmax(log(p)/T +
        b) is p^(1/T) * e^b, normalized). Returns the calibrated probabilities in `ids` order."""
        inv_t = self._inv_t
        weights = self._weights
        q = [
            (p if p > _FLOOR else _FLOOR) ** inv_t * weights[i]
            for i, p in zip(ids, probs, strict=True)
        ]
        total = sum(q)
        return [v / total for v in q]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "temperature": self.temperature,
            "bias": list(self.bias),
            "labels": list(self.labels),
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """A calibration as `to_dict` wrote it; raises ModelError on anything else."""
        try:
            method = str(data["method"])
            temperature = float(data["temperature"])
            labels = tuple(str(x) for x in data["labels"])
            bias = tuple(float(b) for b in data.get("bias") or [0.0] * len(labels))
            stats = dict(data.get("stats") or {})
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"Not a calibration: {err!r} missing or malformed.") from None
        if method not in METHODS:
            raise ModelError(f"Unknown calibration method {method!r}; known: {', '.join(METHODS)}.")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ModelError(f"A calibration's temperature must be positive, got {temperature}.")
        if len(bias) != len(labels) or not all(math.isfinite(b) for b in bias):
            raise ModelError("A calibration needs one finite bias per label.")
        return cls(method, temperature, bias, labels, stats)

    def reordered(self, labels: Sequence[str]) -> Calibration:
        """The same calibration with its biases in `labels` order (a model's own order)."""
        labels = tuple(labels)
        if labels == self.labels:
            return self
        if sorted(labels) != sorted(self.labels):
            raise ModelError(
                f"The calibration is for labels {list(self.labels)}, the model has {list(labels)}."
            )
        where = {name: i for i, name in enumerate(self.labels)}
        bias = tuple(self.bias[where[name]] for name in labels)
        return Calibration(self.method, self.temperature, bias, labels, self.stats)


def identity(labels: Sequence[str]) -> Calibration:
    """The calibration that changes nothing (what an uncalibrated model's scores are)."""
    return Calibration("identity", 1.0, (0.0,) * len(labels), tuple(labels))


IDENTITY = identity(())


def fit(
    probs: np.ndarray, y: np.ndarray, labels: Sequence[str], *, method: str = "temperature"
) -> Calibration:
    """The calibration minimizing the NLL of `y` (label indices) under `probs` ((n, C), every
    label in `labels` order), fitted on held-out data such as a job's validation split."""
    if method not in METHODS:
        raise ValueError(f"Unknown calibration method {method!r}; known: {', '.join(METHODS)}.")
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    labels = tuple(labels)
    if probs.ndim != 2 or probs.shape[1] != len(labels) or len(y) != len(probs):
        raise ValueError(f"probs {probs.shape} and y {y.shape} do not match {len(labels)} labels")
    if method == "identity" or len(y) == 0:
        return identity(labels)
    logits = np.log(np.maximum(probs, _FLOOR))
    params = _newton(logits, y, with_bias=method == "vector")
    # 1/T is fitted; a negative one would flip the ranking: never on real data, guarded anyway.
    inv_t = max(float(params[0]), 1e-3)
    bias = np.zeros(len(labels))
    bias[1:] = params[1:] if method == "vector" else 0.0
    bias -= bias.mean()  # a common shift changes nothing; centred, it reads as log-odds
    calibration = Calibration(method, 1.0 / inv_t, tuple(float(b) for b in bias), labels)
    after = calibration.apply(probs)
    stats = {
        "examples": len(y),
        "nll_before": _nll(logits, y),
        "nll_after": _nll(np.log(np.maximum(after, _FLOOR)), y),
        "ece_before": ece(y, _softmax(logits)),
        "ece_after": ece(y, after),
    }
    return Calibration(method, calibration.temperature, calibration.bias, labels, stats)


def ece(y: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top-1 confidence over `bins` equal-width bins."""
    if len(y) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    gap = np.bincount(index, weights=correct - confidence, minlength=bins)
    return float(np.abs(gap).sum() / len(y)) if counts.sum() else 0.0


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def _nll(z: np.ndarray, y: np.ndarray) -> float:
    p = _softmax(z)
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-15)).mean())


def _newton(logits: np.ndarray, y: np.ndarray, *, with_bias: bool) -> np.ndarray:
    """argmin over theta = (1/T, b_1..b_{C-1}) of the mean NLL of softmax(logits/T + b), b_0 = 0.

    The model is linear in theta (each label's feature vector is (logit, one-hot)), so the NLL
    is convex: damped Newton steps with a backtracking line search converge in ~10 iterations."""
    n, c = logits.shape
    k = c if with_bias else 1
    # features[i, j, :] for row i and label j: (logit_ij, e_j for j >= 1)
    features = np.zeros((n, c, k))
    features[:, :, 0] = logits
    if with_bias:
        features[:, 1:, 1:] = np.eye(c)[1:, 1:]
    rows = np.arange(n)
    theta = np.zeros(k)
    theta[0] = 1.0

    def loss(t: np.ndarray) -> float:
        return _nll(features @ t, y)

    current = loss(theta)
    for _ in range(50):
        q = _softmax(features @ theta)  # (n, c)
        mean_f = np.einsum("ij,ijk->ik", q, features)  # (n, k)
        grad = (mean_f - features[rows, y]).mean(axis=0)
        second = np.einsum("ij,ijk,ijl->kl", q, features, features) / n
        hess = second - mean_f.T @ mean_f / n + 1e-9 * np.eye(k)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:
            candidate = theta - scale * step
            value = loss(candidate)
            if value <= current:
                break
            scale /= 2
        else:
            break
        improvement = current - value
        theta, current = candidate, value
        if improvement < 1e-10:
            break
    return theta
