"""The four answers in a report: what each review was answered, and issue 13's targets.

Every test row is answered as the API answers (`Model.answer_scores`: the text and its
sentences, calibrated; `answers.decide`: the weighted answer), then compared with its true
class on three classes, negative (1-2 stars) / neutral-or-mixed (3 stars) / positive (4-5
stars): the macro-F1 and the star table are the answers', the calibration error the scores'
(merged the same way: neutral + mixed). A test without neutral rows (the polarity layout) is compared on two:
the positive score against the negative one, p = positive / (positive + negative). Both are
computed before calibration (the model's raw scores) and after. A CSV with star ratings also
gets the table of what each star rating was answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sentiment import metrics as m
from sentiment.answers import (
    MIXED,
    NEGATIVE,
    NEUTRAL,
    POLARITY,
    POSITIVE,
    SENTIMENTS,
    decide,
    weights_for,
)
from sentiment.model import Model

MERGED = ("negative", "neutral or mixed", "positive")
# Short texts that carry no polarity: no polar answer at >= 0.9 for them (issue 13).
PROBES = ("meh", "ok", "The product arrived on Tuesday.")


@dataclass(frozen=True)
class Target:
    """One of issue 13's targets: `key` of the answers section, compared with `goal`."""

    name: str
    key: str
    goal: float
    at_least: bool
    # Which tests it applies to, from the answers section.
    applies: Callable[[dict[str, Any]], bool]

    def check(self, section: dict[str, Any]) -> dict[str, Any] | None:
        value = section.get(self.key)
        if value is None or not self.applies(section):
            return None
        passed = value >= self.goal if self.at_least else value <= self.goal
        sign = ">=" if self.at_least else "<="
        return {
            "name": self.name,
            "value": value,
            "goal": f"{sign} {self.goal:g}",
            "passed": passed,
        }


def _stars(section: dict[str, Any]) -> bool:
    return section.get("stars") is not None


def _three(section: dict[str, Any]) -> bool:
    return section["classes"] == 3


def _two(section: dict[str, Any]) -> bool:
    return section["classes"] == 2


TARGETS = (
    Target("macro-F1, negative / neutral-or-mixed / positive", "macro_f1", 0.70, True, _stars),
    Target(
        "3-star reviews answered neutral or mixed",
        "three_star_neutral_or_mixed",
        0.40,
        True,
        _stars,
    ),
    Target("1-star reviews answered negative", "one_star_negative", 0.90, True, _stars),
    Target("5-star reviews answered positive", "five_star_positive", 0.90, True, _stars),
    Target("calibration error (ECE), three classes", "ece_after", 0.03, False, _three),
    Target("accuracy, positive score against negative", "accuracy", 0.90, True, _two),
    Target("calibration error (ECE), positive against negative", "ece_after", 0.02, False, _two),
    Target(
        "probes answered polar at >= 0.9 (meh, ok, ...)",
        "probes_polar_at_90",
        0,
        False,
        lambda s: True,
    ),
)


def compute(
    model: Model,
    texts: list[str],
    labels: list[str],
    raw: bool,
    *,
    sources: list[str] | None = None,
    stars: list[int] | None = None,
) -> dict[str, Any]:
    """The answers section of a report for a test set (`raw`: texts still need normalizing;
    for a CSV, `sources`: each review's title and body on lines of their own, for its
    sentences, and `stars`: its star rating in the full layout)."""
    after = model.answer_scores(texts, sources=sources, raw=not raw)
    before = model.answer_scores(texts, sources=sources, raw=not raw, raw_scores=True)
    # The test labels are the model's own (`check_labels`): read as its answers read them.
    named = dict(zip(model.classes, model.answer_labels, strict=True))
    sides = np.array([POLARITY[named.get(label, label)] for label in labels])
    answered = decide(after, weights_for(model.answer_labels))
    three = bool((sides == NEUTRAL).any())
    section: dict[str, Any] = {
        "classes": 3 if three else 2,
        "calibrated": model.calibration is not None,
        "derivation": model.derivation,
        "answered": _shares(answered, [str(label) for label in labels]),
    }
    if three:
        y = np.select([sides == NEGATIVE, sides == POSITIVE], [0, 2], 1)
        merged_after, merged_before = _merged(after), _merged(before)
        # The answers' classes (the weighted rule of `decide`), not the scores' argmax.
        said = np.select([answered == NEGATIVE, answered == POSITIVE], [0, 2], 1)
        report = m.classification(y, np.eye(3)[said], list(MERGED))
        section |= {
            "macro_f1": report["macro"]["f1"],
            "per_class_f1": {k: v["f1"] for k, v in report["per_label"].items()},
            "reliability_before": m.calibration(y, merged_before),
            "reliability_after": m.calibration(y, merged_after),
        }
    else:
        y = (sides == POSITIVE).astype(np.int64)
        two_after, two_before = _two_way(after), _two_way(before)
        section |= {
            "accuracy": float((two_after.argmax(axis=1) == y).mean()) if len(y) else 0.0,
            "reliability_before": m.calibration(y, two_before),
            "reliability_after": m.calibration(y, two_after),
        }
    section["ece_before"] = section["reliability_before"]["ece"]
    section["ece_after"] = section["reliability_after"]["ece"]
    if stars is not None:
        section["stars"] = _shares(answered, [f"{s} stars" for s in stars])
        rating = np.array(stars)
        section["three_star_neutral_or_mixed"] = _share(answered[rating == 3], (NEUTRAL, MIXED))
        section["one_star_negative"] = _share(answered[rating == 1], (NEGATIVE,))
        section["five_star_positive"] = _share(answered[rating == 5], (POSITIVE,))
    probes = model.answer_scores(list(PROBES))
    section["probes"] = {
        text: dict(zip(SENTIMENTS, row, strict=True))
        for text, row in zip(PROBES, probes.tolist(), strict=True)
    }
    section["probes_polar_at_90"] = int((probes[:, [POSITIVE, NEGATIVE]] >= 0.9).any(axis=1).sum())
    section["targets"] = [t for t in (target.check(section) for target in TARGETS) if t]
    return section


def _merged(scores: np.ndarray) -> np.ndarray:
    return np.stack(
        [scores[:, NEGATIVE], scores[:, NEUTRAL] + scores[:, MIXED], scores[:, POSITIVE]], axis=1
    )


def _two_way(scores: np.ndarray) -> np.ndarray:
    polar = scores[:, POSITIVE] + scores[:, NEGATIVE]
    # A text with no polar score at all (fully neutral or mixed) counts as a coin toss.
    p = np.divide(scores[:, POSITIVE], polar, out=np.full(len(scores), 0.5), where=polar > 0)
    return np.stack([1 - p, p], axis=1)


def _share(answered: np.ndarray, which: tuple[int, ...]) -> float | None:
    return float(np.isin(answered, which).mean()) if len(answered) else None


def _shares(answered: np.ndarray, groups: list[str]) -> dict[str, dict[str, Any]]:
    """{group: {"examples": n, sentiment: share answered, ...}} in sorted group order."""
    keys = np.array(groups)
    out = {}
    for group in sorted(set(groups)):
        mine = answered[keys == group]
        counts = np.bincount(mine, minlength=len(SENTIMENTS))
        out[group] = {"examples": len(mine)} | {
            s: float(c / len(mine)) for s, c in zip(SENTIMENTS, counts, strict=True)
        }
    return out
