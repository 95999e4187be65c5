"""Four answers to "how does this text feel?": positive, negative, neutral or mixed.

Any model whose labels map to a polarity answers them (three-class negative/neutral/positive,
binary negative/positive, star ratings 1_star..5_stars), from its calibrated probabilities.
The classes these functions take are those names: a model with other labels (`__label__1`) is
read through the label map first (`sentiment.labels.LabelMap.names`, the one place where a
model's labels are renamed; by `Model.answer_labels` and the API's `predictors.reading`).

1. Each label's probability goes to a polarity (`POLARITY`: 1-2 stars negative, 3 stars
   neutral, 4-5 stars positive): p_pos, p_neg, p_neu.
2. Mixed or neutral: the neutral side is mixed in the measure m that the text holds a
   sentence leaning positive and another leaning negative, and neutral otherwise. A sentence
   leans by d = p_pos - p_neg (each sentence of the RAW text, split before normalization drops
   the punctuation that ends sentences, scored like a text); m = min(max d, max -d) /
   `MIXED_MARGIN`, clipped to [0, 1]. A text of one sentence is never mixed ("meh": neutral).
   This only splits the neutral side: how polar a text is, is the whole text's scores' say.
3. A model with a neutral label: positive = p_pos, negative = p_neg, neutral = p_neu (1 - m),
   mixed = p_neu m. A binary model (no neutral label) has its neutral side from the
   ambivalence, the probability a text's two sides share, a = (2 min(p_pos, p_neg))^k with
   k = `AMBIVALENCE_POWER`, taken from them (a/2 from each): a text the binary model finds as
   positive as negative (0.5/0.5) is neither, one at 0.99/0.01 keeps its side (a = 0.0004).
   A three-class model says how neutral a text is itself: taking the ambivalence from its
   polar sides as well was measured to cost more than it gains (see `ambivalent`).
4. The four scores sum to 1 and stay calibrated. The answer is a side, the one of highest
   weighted score (`decide`, `ANSWER_WEIGHTS`: positive, negative, neutral + mixed), then
   mixed or neutral by the higher of the two: a cost-sensitive rule chosen on validation
   splits, because the neutral class is rare in training data (3-star reviews are 5.4% of the
   shared star-rated sample and absent from polarity datasets), so the plain argmax answers it
   for few 3-star reviews.

Sentences only split the neutral side, so they are read only where that side (p_neu plus the
ambivalence) is above `SENTENCE_FLOOR`: below it mixed is 0 and neutral keeps the side, which
moves each of the two by at most the floor (mixed = side m <= side) and never changes the
answer (see `SENTENCE_FLOOR`).

The work is batched: `plan(texts)` lists every string to score (the texts, then the sentences
of those that have several), the caller scores them all in one call (sync or async, in
process or over HTTP), and `combine` turns the probabilities into an (n, 4) matrix in numpy.
A caller that can afford two calls scores the texts first and plans only the sentences that
can matter (`plan(texts, only=needs_sentences(classes, probs))`, as `Model.answer_scores`
does): `combine` gives the same scores either way. For the probabilities the engine's
Predictor reports itself (an uncalibrated model, or raw scores), `answered_by` has it make the
scores and answers in one C pass, the sentences included (the same floats; the served path).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sentiment import _sentences
from sentiment.errors import ModelError
from sentiment.labels import LABEL_MAP_SETTING, MAPPABLE

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

# k of a binary model's ambivalence (2 min(p_pos, p_neg))^k. Chosen on the validation split of
# the shared samples when it applied to three-class models too: k = 1, 1.5, 2, 3, 4 gave
# calibration errors 0.055, 0.030, 0.026, 0.032, 0.043; k = 2 is the best calibrated.
AMBIVALENCE_POWER = 2.0
# How far a sentence's positive and negative scores must differ for it to lean one way. The
# sentences are short, so their calibrated scores are tempered ("The screen is gorgeous.":
# 0.68 positive, 0.10 negative); no data labels mixed texts, so this is a rule, tested on
# written cases. It splits the neutral side only: issue 13's targets merge neutral and mixed.
MIXED_MARGIN = 0.2
# Weights of the sides (positive, negative, neutral-or-mixed) in the answer of a model with a
# neutral label: the side is argmax(weight * side score), see `decide`. The scores are calibrated on a validation split whose
# neutral share is the training data's (2.3% in the shared samples, which add polarity rows
# without 3-star reviews to star-rated ones), so a plain argmax answers neutral for one 3-star
# review in ten; macro-F1 counts the rare class as much as the others. Chosen on three
# validation splits of the shared samples (15% of the train files, seeds 1-3; the pipeline's
# ternary model; means; neutral weight w, negative 1.2): w = 3, 4, 5, 6, 7, 8 gave macro-F1
# 0.691, 0.703, 0.716, 0.724, 0.725, 0.721 (negative / neutral-or-mixed / positive), 3-star
# reviews answered neutral or mixed 23%, 29%, 37%, 45%, 50%, 53%, 1-star negative 91.7%, 91.4%,
# 91.3%, 90.6%, 89.9%, 89.0%; negative 1.0 instead of 1.2 kept macro-F1 (0.725 at w = 6) but
# answered 1-star reviews negative 88.4%. A binary model answers by its plain argmax.
ANSWER_WEIGHTS = (1.0, 1.2, 6.0)
# The neutral side (p_neu + the ambivalence) at or below which a text's sentences are not read
# (mixed = 0, neutral = the side). Its neutral and mixed scores then differ from the full rule
# by at most this much, and its answer not at all: positive + negative >= 0.99, so with
# ANSWER_WEIGHTS the side wins only above 1.2 / 14.4 = 0.083 (1/3 for a binary model's plain
# argmax), and mixed against neutral is decided only when it wins. On the short bodies of
# benchmarks/predict (the binary benchmark model, calibrated) it spares the sentences of most
# texts: see README's predict row.
SENTENCE_FLOOR = 0.01

# A sentence ends at . ! ? (repeated, maybe closed by a quote or bracket) before a space, or at
# a line break or a semicolon: as regular expressions (tests/text_reference.py keeps them, the
# oracle of the tests), the text split at `(?<=[.!?])\s+|(?<=[.!?]["')\]])\s+|[\r\n]+|;\s*`,
# pieces without a `\w` dropped. Compiled (`sentiment/_sentences.c`, the same lists on every
# shared review and on generated texts): Python's `re` took 10-13 us a 400-character review,
# 250 us of a 25-review request's answers, the compiled pass 0.5 us (16 us, same run).
_split = _sentences.sentences


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
    return _split(text)


def plan(
    texts: Sequence[str],
    sources: Sequence[str] | None = None,
    only: np.ndarray | None = None,
) -> Plan:
    """What to score for `texts`: see `Plan`. The sentences are those of `sources[i]` when
    given (e.g. a review's title and body on their own lines, where the text the model reads
    repeats the title), else of the texts themselves; only of the texts `only` marks (a
    boolean mask, see `needs_sentences`) when given."""
    strings = list(texts)
    owner: list[int] = []
    starts: list[int] = []
    where = texts if sources is None else sources
    for i in range(len(texts)) if only is None else np.flatnonzero(only).tolist():
        parts = _split(where[i])
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
    total = out.sum(axis=1, keepdims=True)
    return out / np.where(total > 0, total, 1.0)


def combine(
    p: Plan, classes: Sequence[str], probs: np.ndarray, *, power: float = AMBIVALENCE_POWER
) -> np.ndarray:
    """(n, 4) scores in SENTIMENTS order for the plan's texts, from the probabilities of every
    label (columns in `classes` order) for every string of the plan (see the module's rules)."""
    if len(probs) != len(p.strings):
        raise ValueError(f"{len(probs)} rows of probabilities for {len(p.strings)} strings")
    sides = polarity(classes, probs)
    shared, side = _neutral_side(classes, sides[: p.n], power)
    return _combined(p, sides[: p.n], sides[p.n :], shared, side)


def scores_of(
    texts: Sequence[str],
    classes: Sequence[str],
    probs: np.ndarray,
    score: Callable[[list[str]], np.ndarray],
    sources: Sequence[str] | None = None,
    *,
    power: float = AMBIVALENCE_POWER,
) -> np.ndarray:
    """(n, 4) scores of texts whose probabilities are `probs` (columns in `classes` order),
    scoring with `score` (strings -> their probabilities, one batch) only the sentences that
    can change them: `needs_sentences`, `plan(texts, sources, only=...)` and `combine`, with the
    texts' polarity computed once (the same floats; 25 reviews: ~15 us less)."""
    whole = polarity(classes, probs)
    shared, side = _neutral_side(classes, whole, power)
    p = plan(texts, sources, side > SENTENCE_FLOOR)
    parts = polarity(classes, score(p.strings[p.n :])) if len(p.strings) > p.n else whole[:0]
    return _combined(p, whole, parts, shared, side)


def answered_by(
    core: Any,
    texts: Sequence[str],
    classes: Sequence[str],
    probs: np.ndarray,
    score: Callable[[list[str]], np.ndarray],
    sources: Sequence[str] | None = None,
    *,
    power: float = AMBIVALENCE_POWER,
) -> tuple[np.ndarray, list[int]]:
    """The (n, 4) scores (`scores_of`) and the answers (`decided`) of texts whose
    probabilities are `probs`, made by the engine's Predictor `core` in one C pass
    (`Predictor.answers`): for the probabilities it reports itself (an uncalibrated model, or
    raw scores), the same floats as the numpy functions. It reads the sentences itself (of
    `sources[i]` when given), no further than the one that makes a text's measure 1 (25
    reviews of benchmarks/api: 34 of their 69 sentences; the endpoint's answer to them took 203
    us in process with `scores_of` and `decided`, 123 us with this). The texts it leaves to the Python path of the normalization (an
    HTML entity, a lone surrogate) are answered by `scores_of` with `score`: each text's
    scores are its own, so the same floats as the batch's."""
    scores = np.empty((len(probs), 4))
    if not len(probs):
        return scores, []
    strings = list(texts if sources is None else sources)
    weights = weights_for(classes)
    made = core.answers(
        strings,
        np.ascontiguousarray(probs, dtype=np.float64),
        sides_of(classes),
        power,
        SENTENCE_FLOOR,
        MIXED_MARGIN,
        np.asarray(weights, dtype=np.float64),
        scores,
    )
    left = [i for i, answer in enumerate(made) if answer is None]
    if left:
        some = scores_of(
            [texts[i] for i in left], classes, probs[left], score,
            [strings[i] for i in left], power=power,
        )  # fmt: skip
        scores[left] = some
        for i, answer in zip(left, decided(some, weights), strict=True):
            made[i] = answer
    return scores, made


def _combined(
    p: Plan, whole: np.ndarray, parts: np.ndarray, shared: np.ndarray, side: np.ndarray
) -> np.ndarray:
    """`combine` from the polarity of the plan's texts and of its sentences."""
    both = np.zeros(p.n)
    if len(p.starts):
        lean = parts[:, POSITIVE] - parts[:, NEGATIVE]
        opposed = np.minimum(
            np.maximum.reduceat(lean, p.starts), np.maximum.reduceat(-lean, p.starts)
        )
        both[p.owner[p.starts]] = np.clip(opposed / MIXED_MARGIN, 0.0, 1.0)
        both[side <= SENTENCE_FLOOR] = 0.0  # the same whether they were scored or not
    return _assembled(whole, shared, side, both)


def _assembled(
    whole: np.ndarray, shared: np.ndarray, side: np.ndarray, both: np.ndarray
) -> np.ndarray:
    """The (n, 4) scores from the texts' polarity, what is taken from their polar sides, their
    neutral side and the measure that their sentences lean both ways (mixed's share of it)."""
    out = np.empty((len(whole), 4))
    out[:, POSITIVE] = whole[:, POSITIVE] - shared / 2
    out[:, NEGATIVE] = whole[:, NEGATIVE] - shared / 2
    out[:, NEUTRAL] = side * (1 - both)
    out[:, MIXED] = side * both
    return out


def combine_one(
    classes: Sequence[str],
    probs: Sequence[float],
    parts: Sequence[Sequence[float]] = (),
    *,
    power: float = AMBIVALENCE_POWER,
) -> list[float]:
    """`combine` for one text in plain Python, the same floats in the same order (the served
    one-review request of a calibrated model: ~25 numpy calls cost ~30 us, this ~3 us): its
    four scores from the probabilities of every label (`classes` order) for the text and, when
    it has several sentences that can matter, for each of them (`parts`)."""
    where = _polarity_of(classes)
    pos, neg, shared, side = _sides_one(where, probs, power)
    both = 0.0
    if len(parts) and side > SENTENCE_FLOOR:
        lean = _leans(where, parts)
        opposed = min(max(lean), max([-v for v in lean])) / MIXED_MARGIN
        both = 0.0 if opposed < 0.0 else 1.0 if opposed > 1.0 else opposed
    half = shared / 2
    return [pos - half, neg - half, side * (1 - both), side * both]


def needs_sentences_one(
    classes: Sequence[str], probs: Sequence[float], *, power: float = AMBIVALENCE_POWER
) -> bool:
    """`needs_sentences` for one text, in plain Python."""
    return _sides_one(_polarity_of(classes), probs, power)[3] > SENTENCE_FLOOR


def _sides_one(
    where: Sequence[int], probs: Sequence[float], power: float
) -> tuple[float, float, float, float]:
    """(positive, negative, what is taken from them, the neutral side) of one text: `polarity`
    and `_neutral_side` in plain Python."""
    pos, neg, neu = _polarity_one(where, probs)
    if NEUTRAL in where:
        shared = 0.0
    else:
        v = 2 * (neg if neg < pos else pos)
        shared = v * v if power == 2.0 else v**power  # numpy squares for ** 2.0
    return pos, neg, shared, neu + shared


def decide_one(scores: Sequence[float], weights: Sequence[float] = ANSWER_WEIGHTS) -> int:
    """`decide` for one row of four scores, in plain Python."""
    weighted = [scores[POSITIVE] * weights[0], scores[NEGATIVE] * weights[1],
                (scores[NEUTRAL] + scores[MIXED]) * weights[2]]  # fmt: skip
    best = weighted.index(max(weighted))  # the first of equal ones, as argmax
    return MIXED if best == NEUTRAL and scores[MIXED] > scores[NEUTRAL] else best


def _polarity_one(where: Sequence[int], probs: Sequence[float]) -> list[float]:
    """`polarity` of one row: positive, negative, neutral (summed in numpy's order)."""
    out = [0.0, 0.0, 0.0]
    for side, p in zip(where, probs, strict=True):
        out[side] += p
    total = out[0] + out[1] + out[2]
    if total > 0:
        return [out[0] / total, out[1] / total, out[2] / total]
    return out


def _leans(where: Sequence[int], rows: Sequence[Sequence[float]]) -> list[float]:
    """p_pos - p_neg of each row (`_polarity_one`'s floats): for labels of one side each
    (binary, three-class) without a call a row (11 sentences: ~1.5 against ~5 us)."""
    if len(where) == 2 and NEUTRAL not in where:
        i, j = where.index(POSITIVE), where.index(NEGATIVE)
        # _polarity_one's total is (p + n) + 0.0, the same float as p + n (0.0 + p is p).
        return [
            row[i] / t - row[j] / t if (t := row[i] + row[j]) > 0 else row[i] - row[j]
            for row in rows
        ]
    if len(where) == 3 and NEUTRAL in where:
        i, j, u = where.index(POSITIVE), where.index(NEGATIVE), where.index(NEUTRAL)
        return [
            row[i] / t - row[j] / t if (t := row[i] + row[j] + row[u]) > 0 else row[i] - row[j]
            for row in rows
        ]
    return [a - b for a, b, _ in (_polarity_one(where, row) for row in rows)]


def needs_sentences(
    classes: Sequence[str], probs: np.ndarray, *, power: float = AMBIVALENCE_POWER
) -> np.ndarray:
    """Which texts' sentences can change their scores (a boolean mask), from the probabilities
    of the texts alone (columns in `classes` order): those whose neutral side is above
    `SENTENCE_FLOOR`."""
    return _neutral_side(classes, polarity(classes, probs), power)[1] > SENTENCE_FLOOR


def _neutral_side(
    classes: Sequence[str], whole: np.ndarray, power: float
) -> tuple[np.ndarray, np.ndarray]:
    """(what is taken from the polar sides, the neutral side) per row of (n, 3) polarity
    scores: a binary model's neutral side is its ambivalence; a three-class model has its own."""
    shared = np.zeros(len(whole)) if has_neutral(classes) else ambivalence(whole, power)
    return shared, whole[:, NEUTRAL] + shared


def ambivalence(sides: np.ndarray, power: float = AMBIVALENCE_POWER) -> np.ndarray:
    """(2 min(p_pos, p_neg))^power per row of (n, 3) polarity scores: a binary model's neutral
    side. Not taken from a three-class model's sides: on the validation splits of
    `ANSWER_WEIGHTS` (seed 1), doing so (with its weights re-chosen) gave macro-F1 0.668
    against 0.708, and answered 1-star reviews negative 83% against 88%; taking it only from
    texts whose sentences lean both ways (by 0.7 or more) still cost 1-star reviews 3 points."""
    out: np.ndarray = (2 * np.minimum(sides[:, POSITIVE], sides[:, NEGATIVE])) ** power
    return out


def has_neutral(classes: Sequence[str]) -> bool:
    """Whether a model with these labels has a neutral one (3 stars counts)."""
    return NEUTRAL in _polarity_of(classes)


def weights_for(classes: Sequence[str]) -> tuple[float, ...]:
    """The answer weights of a model with these labels (`ANSWER_WEIGHTS`, or plain argmax)."""
    return ANSWER_WEIGHTS if has_neutral(classes) else (1.0, 1.0, 1.0)


def decide(scores: np.ndarray, weights: Sequence[float] = ANSWER_WEIGHTS) -> np.ndarray:
    """The answer (index into SENTIMENTS) per row of an (n, 4) score matrix: the side with the
    highest weighted score (positive, negative, neutral + mixed: `ANSWER_WEIGHTS`), then, on
    the neutral side, mixed where its score is the higher of the two."""
    scores = np.asarray(scores, dtype=np.float64)
    sides = scores[:, :3].copy()
    sides[:, NEUTRAL] += scores[:, MIXED]
    decided: np.ndarray = (sides * np.asarray(weights)).argmax(axis=1)
    decided[(decided == NEUTRAL) & (scores[:, MIXED] > scores[:, NEUTRAL])] = MIXED
    return decided


def decided(scores: np.ndarray, weights: Sequence[float] = ANSWER_WEIGHTS) -> list[int]:
    """`decide` as a list, one row in plain Python (`decide_one`: a served request)."""
    if len(scores) == 1:
        return [decide_one(scores[0].tolist(), weights)]
    out: list[int] = decide(scores, weights).tolist()
    return out


def to_answers(scores: np.ndarray, weights: Sequence[float] = ANSWER_WEIGHTS) -> list[Answer]:
    """Answers from an (n, 4) score matrix in SENTIMENTS order (see `decide`)."""
    best = decide(scores, weights).tolist()
    return [
        Answer(SENTIMENTS[b], dict(zip(SENTIMENTS, row, strict=True)))
        for b, row in zip(best, scores.tolist(), strict=True)
    ]


def derivation(classes: Sequence[str], own: Sequence[str] | None = None) -> str:
    """How the four answers come from a model with these classes, for responses and reports
    (`own`: the model's own names of them, when a label map renamed them)."""
    where = _polarity_of(classes)
    shown = classes if own is None else own
    sides = "; ".join(
        f"{SENTIMENTS[s]} = " + " + ".join(c for c, w in zip(shown, where, strict=True) if w == s)
        for s in (POSITIVE, NEGATIVE, NEUTRAL)
        if s in where
    )
    split = (
        f"the neutral side going to mixed when one of the text's sentences leans positive and "
        f"another negative (by {MIXED_MARGIN:g} for all of it; sentences read where that side "
        f"is above {SENTENCE_FLOOR:g})"
    )
    weights = ", ".join(
        f"{s} x{w:g}"
        for s, w in zip(
            ("positive", "negative", "neutral or mixed"), weights_for(classes), strict=True
        )
    )
    if NEUTRAL in where:
        kind = "three-class" if len(classes) == 3 else f"{len(classes)}-class"
        return f"{kind} model: {sides}; {split}; the answer is the side of highest score weighted {weights}"
    return (
        f"binary model: {sides}; neutral only from the ambivalence a = (2 min(positive, "
        f"negative))^{AMBIVALENCE_POWER:g} taken from both sides; {split}; the answer is the "
        "highest score"
    )


def sides_of(classes: Sequence[str]) -> bytes:
    """The polarity of each label as bytes (0 positive, 1 negative, 2 neutral): the `where`
    the engine's `answers` reads."""
    return _sides_of_labels(tuple(classes))


@functools.lru_cache(maxsize=64)
def _sides_of_labels(classes: tuple[str, ...]) -> bytes:
    return bytes(_polarity_of_labels(classes))


def _polarity_of(classes: Sequence[str]) -> tuple[int, ...]:
    """The polarity (index into SENTIMENTS) of each label, checked (the same few label sets
    on every call: cached)."""
    return _polarity_of_labels(tuple(classes))


@functools.lru_cache(maxsize=64)
def _polarity_of_labels(classes: tuple[str, ...]) -> tuple[int, ...]:
    try:
        where = [POLARITY[c] for c in classes]
    except KeyError as err:
        raise ModelError(
            f"The model's label {err.args[0]!r} has no polarity; "
            f"known labels: {', '.join(POLARITY)}.",
            hint=f"Name its labels' polarity with {LABEL_MAP_SETTING} (--label-map), e.g. "
            f"{err.args[0]}=negative,...: names {', '.join(MAPPABLE)}; or train with a "
            "binary, ternary or stars policy.",
        ) from None
    if POSITIVE not in where or NEGATIVE not in where:
        raise ModelError(f"The model's labels {list(classes)} lack a positive or negative one.")
    return tuple(where)
