"""The one way to build the compiled predictor (`_core.Predictor`, `_core.c`) over a model's
weights: what serves a .bin (sentiment.model) and what the trainer predicts with between epochs."""

from __future__ import annotations

from sentiment.engine import _core
from sentiment.engine.fasttext_bin import BinModel


def covers(model: BinModel) -> bool:
    """Whether the Predictor computes what fastText would for `model`: softmax, no character
    n-grams, no subword rows, at least one label (anything else is the fastText library's)."""
    nwords = model.nwords
    return (
        model.loss == "softmax"
        and model.maxn == 0
        and not any(model.types[:nwords])
        and model.wi.shape[0] == nwords + model.buckets
        and len(model.words) > nwords
    )


def build_predictor(model: BinModel, *, log_probs: bool = False) -> _core.Predictor:
    """The Predictor over `model`'s weights (not copied: it reads the arrays it is given, a
    mapped .bin's or a training run's current ones). ValueError if it does not `covers` it.
    `log_probs`: it reports exact log-probabilities (what calibration reads) instead of
    fastText's probabilities (p + 1e-5, clipped to 1)."""
    if not covers(model):
        raise ValueError("the compiled predictor does not cover this model (see `covers`)")
    return _core.Predictor(
        model.wi,
        model.wo,
        model.dim,
        b"".join(w + b"\n" for w in model.words),
        model.nwords,
        model.word_ngrams,
        model.buckets,
        log_probs,
    )
