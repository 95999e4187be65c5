"""Four answers to "how does this text feel?": positive, negative, neutral or mixed.

Any model whose labels map to a polarity answers them (three-class negative/neutral/positive,
binary negative/positive, star ratings 1_star..5_stars):

1. Each label's (calibrated) probability goes to a polarity: positive, negative or neutral
   (`POLARITY`: 1-2 stars negative, 3 stars neutral, 4-5 stars positive). A model without a
   neutral label (binary) answers neutral with the mass its two sides share: neutral =
   2 * min(p_pos, p_neg), so 0.5/0.5 is fully neutral and 0.99/0.01 is 0.98 polar.
2. Mixed: a text of several sentences is mixed when one sentence is clearly positive and
   another clearly negative. Each sentence of the RAW text (split before normalization, which
   drops the punctuation that ends sentences) is scored like a text; the mixed score is
   min(max positive over its sentences, max negative over its sentences), rescaled so that
   below `MIXED_FLOOR` it is 0 (a sentence at 0.3 is not "clearly" anything).
3. The four scores: mixed, and the whole text's three polarities times (1 - mixed); they
   sum to 1. The answer is the highest score.

The work is batched: `plan(texts)` lists every string to score (the texts, then the sentences
of those that have several), the caller scores them all in one call (sync or async, in
process or over HTTP), and `combine` turns the probabilities into an (n, 4) matrix in numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sentiment.errors import ModelError

SENTIMENTS = ("positive", "negative", "neutral", "mixed")
POSITIVE, NEGATIVE, NEUTRAL, MIXED = range(4)

# Label name -> polarity (index into SENTIMENTS) for every label set we answer from.
POLARITY: dict[str, int] = {
    "positive": POSITIVE,
    "negative": NEGATIVE,
    "neutral": NEUTRAL,
    "1_star": NEGATIVE,
    "2_stars": NEGATIVE,
    "3_stars": NEUTRAL,
    "4_stars": POSITIVE,
    "5_stars": POSITIVE,
}

# A sentence's side counts toward mixed only above this probability (step 2 measures it).
MIXED_FLOOR = 0.0

# A sentence ends at . ! ? (repeated, maybe closed by a quote or bracket) before a space, or at
# a line break or a semicolon.
_BOUNDARY = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|[\r\n]+|;\s*")
# Texts without any of these have one sentence: the cheap test that skips the split.
_MAYBE = re.compile(r"[.!?;\r\n]")
_WORDY = re.compile(r"\w")


@dataclass(frozen=True)
class Plan:
    """The strings to score for a batch of texts: `strings[:n]` are the texts themselves,
    `strings[n:]` the sentences of texts with several, grouped by text; `owner[j]` is the
    text of sentence j and `starts` where each group begins in `owner` (for reduceat)."""

    strings: list[str]
    n: int
    owner: np.ndarray  # (m,) int64, non-decreasing
    starts: np.ndarray  # (g,) int64, the first sentence of each text with several


@dataclass(frozen=True)
class Answer:
    """One text's answer: the most likely of SENTIMENTS and the four scores (sum 1)."""

    sentiment: str
    scores: dict[str, float]


def sentences(text: str) -> list[str]:
    """The sentences of a raw text that hold a word (at least one: the text itself)."""
    if not _MAYBE.search(text):
        return [text]
    parts = [p for p in _BOUNDARY.split(text) if _WORDY.search(p)]
    return parts or [text]


def plan(texts: Sequence[str]) -> Plan:
    """What to score for `texts`: see `Plan`."""
    strings = list(texts)
    owner: list[int] = []
    starts: list[int] = []
    for i, text in enumerate(texts):
        if not _MAYBE.search(text):
            continue
        parts = sentences(text)
        if len(parts) > 1:
            starts.append(len(owner))
            owner.extend([i] * len(parts))
            strings.extend(parts)
    return Plan(
        strings, len(texts), np.asarray(owner, dtype=np.int64), np.asarray(starts, np.int64)
    )


def polarity(classes: Sequence[str], probs: np.ndarray) -> np.ndarray:
    """(n, C) probabilities of `classes` -> (n, 3) positive, negative, neutral (rows sum 1)."""
    where = _polarity_of(classes)
    probs = np.asarray(probs, dtype=np.float64)
    out = np.zeros((len(probs), 3))
    for j, side in enumerate(where):
        out[:, side] += probs[:, j]
    if NEUTRAL not in where:
        shared = np.minimum(out[:, POSITIVE], out[:, NEGATIVE])
        out[:, POSITIVE] -= shared
        out[:, NEGATIVE] -= shared
        out[:, NEUTRAL] = 2 * shared
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def combine(
    p: Plan, classes: Sequence[str], probs: np.ndarray, *, floor: float = MIXED_FLOOR
) -> np.ndarray:
    """(n, 4) scores in SENTIMENTS order for the plan's texts, from the probabilities of every
    label (columns in `classes` order) for every string of the plan."""
    if len(probs) != len(p.strings):
        raise ValueError(f"{len(probs)} rows of probabilities for {len(p.strings)} strings")
    sides = polarity(classes, probs)
    whole = sides[: p.n]
    out = np.zeros((p.n, 4))
    mixed = np.zeros(p.n)
    if len(p.starts):
        parts = sides[p.n :]
        most_pos = np.maximum.reduceat(parts[:, POSITIVE], p.starts)
        most_neg = np.maximum.reduceat(parts[:, NEGATIVE], p.starts)
        both = np.minimum(most_pos, most_neg)
        if floor > 0:
            both = np.clip((both - floor) / (1 - floor), 0.0, 1.0)
        mixed[p.owner[p.starts]] = both
    out[:, :3] = whole * (1 - mixed)[:, None]
    out[:, MIXED] = mixed
    return out


def to_answers(scores: np.ndarray) -> list[Answer]:
    """Answers from an (n, 4) score matrix in SENTIMENTS order."""
    best = scores.argmax(axis=1).tolist()
    return [
        Answer(SENTIMENTS[b], dict(zip(SENTIMENTS, row, strict=True)))
        for b, row in zip(best, scores.tolist(), strict=True)
    ]


def derivation(classes: Sequence[str]) -> str:
    """How the four answers come from a model with these classes, for responses and reports."""
    where = _polarity_of(classes)
    sides = "; ".join(
        f"{SENTIMENTS[s]} = " + " + ".join(c for c, w in zip(classes, where, strict=True) if w == s)
        for s in (POSITIVE, NEGATIVE, NEUTRAL)
        if s in where
    )
    if NEUTRAL in where:
        kind = "three-class" if len(classes) == 3 else f"{len(classes)}-class"
        base = f"{kind} model: {sides}"
    else:
        base = (
            f"binary model: {sides}; neutral = 2 x min(positive, negative), taken from both sides"
        )
    return (
        f"{base}; mixed = min(top positive, top negative) over the text's sentences, "
        "the other three scaled by (1 - mixed)"
    )


def _polarity_of(classes: Sequence[str]) -> list[int]:
    try:
        where = [POLARITY[c] for c in classes]
    except KeyError as err:
        raise ModelError(
            f"The model's label {err.args[0]!r} has no polarity; "
            f"known labels: {', '.join(POLARITY)}.",
            hint="Train with a binary, ternary or stars policy.",
        ) from None
    if POSITIVE not in where or NEGATIVE not in where:
        raise ModelError(f"The model's labels {list(classes)} lack a positive or negative one.")
    return where
