"""Calibrating a model's probabilities so a score of 0.9 is right 9 times in 10.

fastText's probabilities are a softmax over its scores, so `log p` is the vector of logits up to
a per-row constant, which a softmax ignores. A `Calibration` rescales them:

    calibrated = softmax(max(log(p) * shrink(n), log(1e-5)) / T + bias)

with one temperature `T` for every label (temperature scaling, Guo et al. 2017) and, for
`method="vector"`, one bias per label (a shift of the prior: the rare class's share can be set
right without retraining). Both are fitted on a training job's validation split by minimizing
the negative log-likelihood; the problem is convex in (1/T, bias), so Newton's method finds the
optimum in a few steps with numpy alone. The "length" method tempers a text of n words by
shrink(n) = n / (n + n0 exp(-n / L)) too (1 without it; no L: n / (n + n0)), n0 and L fitted on
short texts and the reviews they are drawn from (`fit_length`).

`inputs` records what a calibration reads. "log" (what training jobs fit): the model's exact
log-probabilities (`Model.log_proba`, the compiled predictor's log-softmax), floored at
log(1e-5) after the shrinkage, so a short text keeps what its logits say. "probs" (calibrations
fitted before, whose calibration.json has no `inputs`): fastText's reported p + 1e-5, as

    calibrated = softmax(log(max(p + 1e-5, 1e-7)) * shrink(n) / T + bias)

where every text the model is sure of (a logit gap above log(1e5) = 11.5: most one-word texts,
"ok" 33, "terrible" 117) reads (1, 1e-5, 1e-5) and gets the same scores whatever its words;
those files keep exactly the scores they were fitted for.

A training job fits both: "log" inputs, and the same fit on "probs" inputs stored with it as
`reported`, for the API in front of SageMaker's BlazingText container (which reports p + 1e-5:
`Calibration.for_reported`). It stores them as `calibration.json` beside `model.bin` in
model.tar.gz (SageMaker's container ignores it); `sentiment.model` applies it to every
prediction unless raw scores are asked for. A model without the file is uncalibrated (`IDENTITY`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sentiment.errors import ModelError
from sentiment.labels import GENERAL_SHARES, read_labelled

METHODS = ("identity", "temperature", "vector", "length")
FITTED = METHODS[:3]  # what `fit` fits; "length" is `fit_length` over one of them
# What a calibration reads (see above): "probs" (p + 1e-5; no `inputs` in its file) or "log".
INPUTS = ("probs", "log")
# fastText reports p + 1e-5 and a softmax can underflow to 0: log needs a floor.
_FLOOR = 1e-7
# The floor of "log" inputs, applied after the shrinkage: fastText's own 1e-5, so reviews are
# read as with "probs" inputs (T and the biases fit alike) and only short texts, whose shrunk
# log-probabilities rise above it, keep what their logits say.
LOG_FLOOR = math.log(1e-5)


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
    # method "length": a text of n words has its logits scaled by n / (n + length) as well, so
    # a text of one or two words (few features to go on) is tempered more than a review.
    length: float = 0.0
    inputs: str = "probs"  # what `apply` reads: probabilities, or "log"-probabilities
    # L of the shrinkage n / (n + length * exp(-n / L)) (0: none, n / (n + length)): with it
    # the term fades out over a review's length, so a review of a hundred words is read as
    # the vector scaling fitted on reviews reads it (see `fit_length`).
    length_scale: float = 0.0
    # The same fit on fastText's reported p + 1e-5 ("probs" inputs) of the same rows, for a host
    # that reports those and not the exact log-probabilities: SageMaker's BlazingText container,
    # whose answers the API calibrates with it (`for_reported`). None: not fitted (files before
    # it, or a calibration that reads "probs" itself).
    reported: Calibration | None = field(default=None, compare=False)
    # For `apply_one`: 1/T and exp(bias), so a row costs one power and one product per label.
    _inv_t: float = field(init=False, repr=False, compare=False)
    _weights: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _identity: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inv_t", 1.0 / self.temperature)
        object.__setattr__(self, "_weights", tuple(math.exp(b) for b in self.bias))
        object.__setattr__(self, "_identity", self.is_identity)

    def for_reported(self) -> Calibration | None:
        """The calibration of fastText's reported probabilities (p + 1e-5 of every label, as a
        BlazingText endpoint answers them): itself for "probs" inputs, else the `reported` fit
        (None when it has none: exact log-probabilities cannot be had from those)."""
        return self if self.inputs == "probs" else self.reported

    @property
    def is_identity(self) -> bool:
        return self.temperature == 1.0 and not any(self.bias) and not self.length

    def shrink(self, words: np.ndarray) -> np.ndarray:
        """The factor of each text's logits for its word count (the "length" method)."""
        return _shrink(np.asarray(words, np.float64), self.length, self.length_scale)

    def shrink_one(self, words: int) -> float:
        """`shrink` of one text, in plain Python."""
        n = max(words, 1)
        n0 = self.length * math.exp(-n / self.length_scale) if self.length_scale else self.length
        return n / (n + n0)

    def apply(self, probs: np.ndarray, words: np.ndarray | None = None) -> np.ndarray:
        """(n, C) probabilities of every label (log-probabilities for "log" `inputs`), in
        `labels` order -> calibrated, rows sum to 1. `words`: each text's word count
        (`count_words`), used by the "length" method."""
        probs = np.asarray(probs, dtype=np.float64)
        if self.inputs == "log":
            return self._apply_log(probs, words)
        if self.is_identity:
            return probs / np.maximum(probs.sum(axis=1, keepdims=True), _FLOOR)
        scale: float | np.ndarray = 1.0 / self.temperature
        if self.length and words is not None:
            scale = scale * self.shrink(words)[:, None]
        z = log_of(probs) * scale
        if any(self.bias):
            z += np.asarray(self.bias)
        return _softmax(z)

    def _apply_log(self, logp: np.ndarray, words: np.ndarray | None) -> np.ndarray:
        if self.is_identity:
            return _softmax(logp)
        if self.length and words is not None:
            logp = logp * self.shrink(words)[:, None]
        z = np.maximum(logp, LOG_FLOOR) * self._inv_t
        if any(self.bias):
            z += np.asarray(self.bias)
        return _softmax(z)

    def apply_one(
        self, ids: Sequence[int], probs: Sequence[float], words: int | None = None
    ) -> list[float]:
        """One row given as label ids and their probabilities (log-probabilities for "log"
        `inputs`; every label, any order), in plain Python: for one text it costs less than
        numpy's call overhead (softmax(log(p)/T + b) is p^(1/T) * e^b, normalized). Returns the
        calibrated probabilities in `ids` order."""
        if self.inputs == "log":
            return self._apply_one_log(ids, probs, words)
        inv_t = self._inv_t
        if self.length and words is not None:
            inv_t *= self.shrink_one(words)
        weights = self._weights
        q = [
            (p if p > _FLOOR else _FLOOR) ** inv_t * weights[i]
            for i, p in zip(ids, probs, strict=True)
        ]
        total = sum(q)
        return [v / total for v in q]

    def _apply_one_log(
        self, ids: Sequence[int], logp: Sequence[float], words: int | None
    ) -> list[float]:
        if self._identity:
            top = max(logp)
            q = [math.exp(v - top) for v in logp]
        else:
            scale = 1.0
            if self.length and words is not None:
                scale = self.shrink_one(words)
            # exp(max(log p * scale, floor) / T) * e^b, not shifted by the largest: the top
            # label's log p is above -log(labels), so all of them underflow only for T below
            # log(labels) / 745 (then: shifted)
            inv_t, weights, floor = self._inv_t, self._weights, LOG_FLOOR
            q = [
                math.exp((v * scale if v * scale > floor else floor) * inv_t) * weights[i]
                for i, v in zip(ids, logp, strict=True)
            ]
            total = sum(q)
            if 0.0 < total < math.inf:
                return [v / total for v in q]
            bias = self.bias
            z = [max(v * scale, floor) * inv_t + bias[i] for i, v in zip(ids, logp, strict=True)]
            top = max(z)
            q = [math.exp(v - top) for v in z]
        total = sum(q)
        return [v / total for v in q]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "temperature": self.temperature,
            "bias": list(self.bias),
            "length": self.length,
            "length_scale": self.length_scale,
            "labels": list(self.labels),
            "inputs": self.inputs,
            "stats": self.stats,
        } | ({"reported": self.reported.to_dict()} if self.reported is not None else {})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """A calibration as `to_dict` wrote it; raises ModelError on anything else."""
        try:
            method = str(data["method"])
            temperature = float(data["temperature"])
            labels = tuple(str(x) for x in data["labels"])
            bias = tuple(float(b) for b in data.get("bias") or [0.0] * len(labels))
            stats = dict(data.get("stats") or {})
            length = float(data.get("length") or 0.0)
            length_scale = float(data.get("length_scale") or 0.0)  # absent: fitted before it
            # absent: a calibration fitted before "log" inputs, on fastText's p + 1e-5
            inputs = str(data.get("inputs") or "probs")
            reported_data = data.get("reported")  # absent: fitted before it
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"Not a calibration: {err!r} missing or malformed.") from None
        if method not in METHODS:
            raise ModelError(f"Unknown calibration method {method!r}; known: {', '.join(METHODS)}.")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ModelError(f"A calibration's temperature must be positive, got {temperature}.")
        if len(bias) != len(labels) or not all(math.isfinite(b) for b in bias):
            raise ModelError("A calibration needs one finite bias per label.")
        if not (math.isfinite(length) and length >= 0):
            raise ModelError(f"A calibration's length term must be >= 0, got {length}.")
        if not (math.isfinite(length_scale) and length_scale >= 0):
            raise ModelError(f"A calibration's length scale must be >= 0, got {length_scale}.")
        if inputs not in INPUTS:
            raise ModelError(f"Unknown calibration inputs {inputs!r}; known: {', '.join(INPUTS)}.")
        reported = None
        if reported_data is not None:
            if not isinstance(reported_data, dict):
                raise ModelError('A calibration\'s "reported" fit must be an object.')
            reported = cls.from_dict(reported_data)
            if reported.inputs != "probs" or sorted(reported.labels) != sorted(labels):
                raise ModelError(
                    'A calibration\'s "reported" fit reads fastText\'s probabilities ("probs") '
                    "of the same labels."
                )
            reported = reported.reordered(labels)
        return cls(method, temperature, bias, labels, stats, length, inputs, length_scale, reported)

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
        reported = None if self.reported is None else self.reported.reordered(labels)
        return replace(self, bias=bias, labels=labels, reported=reported)


def log_of(probs: np.ndarray) -> np.ndarray:
    """log p of fastText's reported probabilities, as "probs" calibrations read them (a
    softmax can underflow to 0: floored at 1e-7)."""
    out: np.ndarray = np.log(np.maximum(probs, _FLOOR))
    return out


def identity(labels: Sequence[str], inputs: str = "probs") -> Calibration:
    """The calibration that changes nothing (what an uncalibrated model's scores are)."""
    return Calibration("identity", 1.0, (0.0,) * len(labels), tuple(labels), inputs=inputs)


IDENTITY = identity(())


def fit(
    probs: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    *,
    method: str = "temperature",
    inputs: str = "probs",
) -> Calibration:
    """The calibration minimizing the NLL of `y` (label indices) under `probs` ((n, C), every
    label in `labels` order; log-probabilities for `inputs="log"`), fitted on held-out data
    such as a job's validation split. "temperature": T only; "vector": T and a bias per label."""
    if method not in FITTED:
        raise ValueError(f"Unknown calibration method {method!r}; known: {', '.join(FITTED)}.")
    if inputs not in INPUTS:
        raise ValueError(f"Unknown calibration inputs {inputs!r}; known: {', '.join(INPUTS)}.")
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    labels = tuple(labels)
    if probs.ndim != 2 or probs.shape[1] != len(labels) or len(y) != len(probs):
        raise ValueError(f"probs {probs.shape} and y {y.shape} do not match {len(labels)} labels")
    if method == "identity" or len(y) == 0:
        return identity(labels, inputs)
    logits = np.maximum(probs, LOG_FLOOR) if inputs == "log" else log_of(probs)
    params = _newton(logits, y, with_bias=method != "temperature")
    # 1/T is fitted; a negative one would flip the ranking: never on real data, guarded anyway.
    inv_t = max(float(params[0]), 1e-3)
    bias = np.zeros(len(labels))
    if method != "temperature":
        bias[1:] = params[1:]
    bias -= bias.mean()  # a common shift changes nothing; centred, it reads as log-odds
    fitted = Calibration(method, 1.0 / inv_t, tuple(float(b) for b in bias), labels, inputs=inputs)
    return replace(fitted, stats=measure(fitted, probs, y, None))


def fit_length(
    base: Calibration,
    probs: np.ndarray,
    y: np.ndarray,
    words: np.ndarray,
    reviews: tuple[np.ndarray, np.ndarray] | None = None,
) -> Calibration:
    """`base` (fitted on whole reviews) with the shrinkage n0 of the "length" method fitted on
    short texts (`probs`, labels `y`, word counts `words`): n0 is searched on `LENGTH_GRID`
    with the temperature and biases held (`probs` read as `base.inputs` says).
    Reviews hold few texts of one or two words, so the short texts are drawn from held-out
    reviews (windows of a few words, labelled with their review's label: what a few words
    of a review say about it is what a short text can be trusted with).

    `reviews`: the probabilities and word counts of those reviews themselves (labels `y`).
    The shrinkage tempers a review of a few dozen words too, so n0 then minimizes the NLL of
    the short texts and of the reviews, counted alike, and the reviews' recorded figures are
    measured with it: fitted on the short texts alone, a model whose raw scores were already
    well calibrated on reviews got n0 = 32 and review ECE 0.027 -> 0.066 (with the fade-out
    below: 0.031, review NLL 0.372 -> 0.368; `sentiment calibrate`'s tests). With the reviews,
    the term's fade-out over a review's length, L of n / (n + n0 exp(-n / L)), is chosen with
    n0 (`LENGTH_SCALES`, 0 = none). `make run`'s model (seeds 1 and 2) got n0 = 16 without it
    (validation reviews' ECE 0.028-0.029; polarity test 0.019-0.020, full test 0.012-0.013)
    and n0 = 16, L = 160 with it (0.020-0.021; 0.012, 0.020), the short texts' NLL 0.54 both."""
    y = np.asarray(y, dtype=np.int64)
    words = np.asarray(words, np.float64)

    def nll(shape: tuple[float, float]) -> float:
        trial = replace(base, method="length", length=shape[0], length_scale=shape[1])
        total = _nll(np.log(np.maximum(trial.apply(probs, words), _FLOOR)), y)
        if reviews is not None:
            total += _nll(np.log(np.maximum(trial.apply(*reviews), _FLOOR)), y)
        return total

    scales = LENGTH_SCALES if reviews is not None else (0.0,)
    n0, scale = min(((n0, lg) for lg in scales for n0 in LENGTH_GRID), key=nll)
    fitted = replace(base, method="length", length=float(n0), length_scale=float(scale))
    stats = dict(base.stats)
    if reviews is not None:
        stats |= measure(fitted, reviews[0], y, reviews[1])
    stats |= {f"short_{k}": v for k, v in measure(fitted, probs, y, words).items()}
    return replace(fitted, stats=stats)


def measure(
    c: Calibration, probs: np.ndarray, y: np.ndarray, words: np.ndarray | None
) -> dict[str, Any]:
    """Examples, NLL and ECE of `y` under `probs` (read as `c.inputs` says) before and after
    `c` (`words`: each text's word count, for the "length" method)."""
    before = identity(c.labels, c.inputs).apply(probs)
    after = c.apply(probs, words)
    return {
        "examples": len(y),
        "nll_before": _nll(np.log(np.maximum(before, _FLOOR)), y),
        "nll_after": _nll(np.log(np.maximum(after, _FLOOR)), y),
        "ece_before": ece(y, before),
        "ece_after": ece(y, after),
    }


# Candidate n0 of the "length" method: 0 (no shrinkage) to a text of 32 words at half scale
# ("log" inputs keep the content of short texts, which bears a larger n0 than "probs" did).
LENGTH_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 32.0)
# Candidate L (words) of the term's fade-out, chosen with n0 when the reviews are given (0: no
# fade-out; reviews of the shared samples: median ~90 words).
LENGTH_SCALES = (0.0, 40.0, 60.0, 80.0, 120.0, 160.0, 240.0)


def _shrink(words: np.ndarray, n0: float, scale: float = 0.0) -> np.ndarray:
    words = np.maximum(words, 1.0)
    out: np.ndarray = words / (words + (n0 * np.exp(-words / scale) if scale else n0))
    return out


def count_words(texts: Sequence[str], *, normalized: bool = False) -> np.ndarray:
    """Words per text for the "length" method. Raw text: `words_of` (0.3 us for a review,
    where a regular expression costs 9 us on the served path). Normalized text (what a job's
    validation file holds) has its punctuation split into tokens of their own: those tokens
    without a letter or digit are not counted, so both count "great, but bad." as 3."""
    if normalized:
        return np.fromiter(
            (sum(1 for t in text.split() if _ALNUM.search(t)) for text in texts),
            np.float64,
            len(texts),
        )
    return np.fromiter((words_of(text) for text in texts), np.float64, len(texts))


def words_of(text: str) -> int:
    """Words of one raw text: its spaces + 1 once stripped (0 for a blank text)."""
    stripped = text.strip()
    return stripped.count(" ") + 1 if stripped else 0


_ALNUM = re.compile(r"[^\W_]")


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


class Scorer(Protocol):
    """What `fit_file` needs of a model (`sentiment.model.Model`)."""

    @property
    def classes(self) -> tuple[str, ...]: ...

    def log_proba(self, texts: Sequence[str], *, raw: bool = False) -> np.ndarray: ...

    def predict_proba(
        self, texts: Sequence[str], *, raw: bool = False, raw_scores: bool = False
    ) -> np.ndarray: ...


# Word counts of the short texts `fit_file` draws from each validation review (its first
# words, i.e. the start of its title: short texts people write are mostly verdicts like these).
SHORT_LENGTHS = (1, 2, 3, 4, 6, 8)


def fit_file(
    model: Scorer, path: Path, shares: Mapping[str, float] = GENERAL_SHARES
) -> Calibration:
    """The calibration a training job stores: fitted (`fit_labelled`) on its validation file
    (prepared `__label__x text` lines). Lines whose label the model lacks are skipped."""
    texts, labels = read_labelled(path, model.classes)
    return fit_labelled(model, texts, labels, shares)


def fit_labelled(
    model: Scorer,
    texts: Sequence[str],
    labels: Sequence[int],
    shares: Mapping[str, float] = GENERAL_SHARES,
) -> Calibration:
    """The calibration of a training job (`fit_file`) and of `sentiment calibrate`, fitted on
    held-out `texts` as the model reads them (normalized) and their `labels` (indices into
    `model.classes`): vector scaling on the reviews, then the "length" shrinkage on their first
    1-8 words (`fit_length`), both on the model's exact log-probabilities ("log" inputs); and
    the same on fastText's reported p + 1e-5, stored with it as `reported`.

    `shares`: a class's share among reviews at large where the held-out data's is skewed
    (`labels.GENERAL_SHARES`); its prior is moved there (Saerens et al. 2002: bias +=
    log(share / validation share), the other classes sharing the rest as in validation)."""
    y = np.asarray(labels, dtype=np.int64)
    short = [
        " ".join(text.split()[: SHORT_LENGTHS[i % len(SHORT_LENGTHS)]])
        for i, text in enumerate(texts)
    ]
    words = count_words(texts, normalized=True)
    short_words = count_words(short, normalized=True)
    observed = np.bincount(y, minlength=len(model.classes)) / len(y)

    def fitted_on(inputs: str, scores: np.ndarray, short_scores: np.ndarray) -> Calibration:
        base = fit(scores, y, model.classes, method="vector", inputs=inputs)
        fitted = fit_length(base, short_scores, y, short_words, reviews=(scores, words))
        shifted = prior_shift(fitted, observed, shares)
        if shifted.bias != fitted.bias:  # the recorded figures are those of what is stored
            shifted = replace(shifted, stats=shifted.stats | measure(shifted, scores, y, words))
        return shifted

    calibration = fitted_on(
        "log", model.log_proba(texts, raw=True), model.log_proba(short, raw=True)
    )
    # The same fit on what a BlazingText endpoint reports (p + 1e-5), for the API in front of
    # SageMaker's container hosting this model (`Calibration.reported`).
    reported = fitted_on(
        "probs",
        model.predict_proba(texts, raw=True, raw_scores=True),
        model.predict_proba(short, raw=True, raw_scores=True),
    )
    return replace(calibration, reported=reported)


def prior_shift(
    calibration: Calibration, observed: np.ndarray, shares: Mapping[str, float]
) -> Calibration:
    """`calibration` with the priors of the classes in `shares` moved from their `observed`
    shares (label order) to those, the other classes keeping their proportions."""
    target = np.asarray(observed, dtype=np.float64).copy()
    moved = [i for i, name in enumerate(calibration.labels) if name in shares]
    if not moved or not all(target[i] > 0 for i in moved):
        return calibration
    rest = [i for i in range(len(target)) if i not in moved]
    for i in moved:
        target[i] = shares[calibration.labels[i]]
    left = 1.0 - target[moved].sum()
    if left <= 0 or not rest or target[rest].sum() <= 0:
        return calibration
    target[rest] *= left / target[rest].sum()
    shift = np.log(target / np.maximum(observed, _FLOOR))
    bias = np.asarray(calibration.bias) + shift
    bias -= bias.mean()
    stats = calibration.stats | {
        "prior_shift": {calibration.labels[i]: float(shift[i]) for i in range(len(shift))}
    }
    return replace(calibration, bias=tuple(float(b) for b in bias), stats=stats)
