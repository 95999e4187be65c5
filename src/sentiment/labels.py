"""Label policies: how a review's star rating becomes a class, and the `__label__` prefix.

Defined once here; prepare writes these labels, train learns them, and evaluate, serve and the
API report them. A source row's label is read in its dataset's layout first:
`amazon_review_full` has stars 1..5, `amazon_review_polarity` has 1 (1-2 stars) or 2 (4-5 stars).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sentiment.errors import ConfigError, UsageError

LABEL_PREFIX = "__label__"


class Layout(StrEnum):
    FULL = "full"  # label column: stars 1..5
    POLARITY = "polarity"  # label column: 1 = negative (1-2 stars), 2 = positive (4-5 stars)


class Policy(StrEnum):
    BINARY = "binary"
    TERNARY = "ternary"
    STARS = "stars"


# The label values each layout allows in its first column.
LAYOUT_VALUES: dict[Layout, tuple[str, ...]] = {
    Layout.FULL: ("1", "2", "3", "4", "5"),
    Layout.POLARITY: ("1", "2"),
}

# (layout, raw label) -> class name under each policy; None = dropped by the policy.
POLICY_TABLE: dict[Policy, dict[Layout, dict[str, str | None]]] = {
    Policy.BINARY: {
        Layout.FULL: {
            "1": "negative",
            "2": "negative",
            "3": None,
            "4": "positive",
            "5": "positive",
        },
        Layout.POLARITY: {"1": "negative", "2": "positive"},
    },
    Policy.TERNARY: {
        Layout.FULL: {
            "1": "negative",
            "2": "negative",
            "3": "neutral",
            "4": "positive",
            "5": "positive",
        },
        Layout.POLARITY: {"1": "negative", "2": "positive"},
    },
    Policy.STARS: {
        Layout.FULL: {
            "1": "1_star",
            "2": "2_stars",
            "3": "3_stars",
            "4": "4_stars",
            "5": "5_stars",
        },
        # Polarity rows carry no star rating, so the stars policy cannot place them.
        Layout.POLARITY: {"1": None, "2": None},
    },
}

# Classes of each policy, in a stable order (used for reports and score maps).
POLICY_CLASSES: dict[Policy, tuple[str, ...]] = {
    Policy.BINARY: ("negative", "positive"),
    Policy.TERNARY: ("negative", "neutral", "positive"),
    Policy.STARS: ("1_star", "2_stars", "3_stars", "4_stars", "5_stars"),
}


# The share of a class among reviews at large, where a training set's own share is skewed by
# construction, to move a job's calibration there (`calibration.fit_file`). None by default:
# the polarity datasets leave out 3-star reviews, so a ternary training set holds few neutral
# rows (2.3% of the shared samples' validation split, 5.4% of the star-rated rows), but moving
# the neutral prior to 8% or 5.4% made the scores of star-rated reviews worse calibrated (ECE
# 0.049 and 0.034 on the star-rated rows of the validation split, 0.014 unmoved): these rows
# are less polar than polarity rows as well as more often neutral. The answer makes up for the
# rare class instead (`answers.ANSWER_WEIGHTS`), leaving the scores as fitted.
GENERAL_SHARES: dict[str, float] = {}


def parse_policy(name: str) -> Policy:
    try:
        return Policy(name)
    except ValueError:
        choices = ", ".join(p.value for p in Policy)
        raise UsageError(f"Unknown label policy {name!r}; choose one of: {choices}.") from None


def map_label(layout: Layout, raw: str, policy: Policy) -> str | None:
    """The class for a raw label, or None when the policy drops it. Raises on a value the layout lacks."""
    table = POLICY_TABLE[policy][layout]
    if raw not in table:
        allowed = ", ".join(LAYOUT_VALUES[layout])
        raise UsageError(f"Label {raw!r} is not a {layout.value} label; expected one of {allowed}.")
    return table[raw]


def with_prefix(name: str) -> str:
    """`positive` -> `__label__positive`."""
    return name if name.startswith(LABEL_PREFIX) else LABEL_PREFIX + name


def strip_prefix(label: str) -> str:
    """`__label__positive` -> `positive` (labels without the prefix are returned as they are)."""
    return label.removeprefix(LABEL_PREFIX)


def split_line(line: str) -> tuple[str | None, str]:
    """(first label without its prefix, or None; the text) of a prepared `__label__x text` line."""
    tokens = line.split()
    names = [t for t in tokens if t.startswith(LABEL_PREFIX)]
    text = " ".join(t for t in tokens if not t.startswith(LABEL_PREFIX))
    return (strip_prefix(names[0]) if names else None), text


def read_labelled(path: Path, classes: Sequence[str]) -> tuple[list[str], list[int]]:
    """(texts, their labels as indices into `classes`) of a prepared `__label__x text` file;
    lines whose label is not one of `classes` are skipped."""
    index = {name: i for i, name in enumerate(classes)}
    texts, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            label, text = split_line(line)
            if label in index:
                texts.append(text)
                labels.append(index[label])
    return texts, labels


# Below this share of the rows, 3-5 star labels among 1s and 2s make a file ambiguous: a full
# layout file of nearly only bad reviews, or a polarity file with a few bad rows (which the
# full layout would take in silently, its 2s turned from positive into 2 stars).
AMBIGUOUS_STARS = 0.01


def detect_layout(label_counts: Mapping[str, int]) -> Layout:
    """The layout whose label column fits these raw label counts: every row's label, as
    `sentiment.reviews.count_labels` reads them (a file's first rows are not enough: a file
    sorted by stars starts with 1s and 2s only).

    3, 4 or 5 means star ratings (full); only 1s and 2s mean polarity. A few 3-5s among many
    1s and 2s (under AMBIGUOUS_STARS of them) could be either, so the caller must say.
    """
    stars = sum(n for label, n in label_counts.items() if label.strip() in ("3", "4", "5"))
    polar = sum(n for label, n in label_counts.items() if label.strip() in ("1", "2"))
    if stars and stars < AMBIGUOUS_STARS * (stars + polar):
        raise UsageError(
            f"{stars:,} rows of 3-5 stars among {polar:,} rows labelled 1 or 2: the full "
            "layout (stars 1-5) with few 3-5 star reviews, or the polarity layout (1/2) with a "
            "few bad rows?",
            hint="Pass --layout full or --layout polarity.",
        )
    if stars:
        return Layout.FULL
    if polar:
        return Layout.POLARITY
    raise UsageError(
        f"Cannot tell the layout from the labels {sorted(label_counts)[:5]}.",
        hint="Pass --layout full or --layout polarity.",
    )


# The names a label map may give a model's labels: our policies' classes, each of which has a
# polarity (`sentiment.answers.POLARITY`).
MAPPABLE: tuple[str, ...] = tuple(dict.fromkeys(c for cs in POLICY_CLASSES.values() for c in cs))
LABEL_MAP_SETTING = "SENTIMENT_LABEL_MAP"
# Zhang et al.'s CSV layouts, as a model trained on their raw label column (SageMaker's
# BlazingText on the stock datasets: `__label__1`, `__label__2`) names its labels: a model with
# exactly these labels and no label map is read so (`LabelMap.names` says it inferred it).
ZHANG_NAMES: dict[frozenset[str], tuple[Layout, Policy]] = {
    frozenset(LAYOUT_VALUES[Layout.POLARITY]): (Layout.POLARITY, Policy.BINARY),
    frozenset(LAYOUT_VALUES[Layout.FULL]): (Layout.FULL, Policy.STARS),
}


@dataclass(frozen=True)
class LabelMap:
    """The names the four answers read for a model's own labels (`1=negative,2=positive`): for
    a model whose labels are not ours (BlazingText trained on a raw dataset: `__label__1`,
    `__label__pos`). Parsed once where settings are read; the labels it does not name keep
    their own. Empty: Zhang's layouts are inferred (`names`)."""

    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str | Sequence[str], where: str = "--label-map") -> LabelMap:
        """`1=negative,2=positive` (or its comma-separated parts); ConfigError naming the bad
        part and the fix."""
        parts = value.split(",") if isinstance(value, str) else list(value)
        pairs: dict[str, str] = {}
        for part in (p.strip() for p in parts):
            if not part:
                continue
            label, sep, name = (s.strip() for s in part.partition("="))
            label = strip_prefix(label)
            if not sep or not label or not name:
                raise ConfigError(
                    f"{where}: {part!r} is not LABEL=NAME.",
                    hint="Give LABEL=NAME pairs separated by commas, e.g. 1=negative,2=positive.",
                )
            if name not in MAPPABLE:
                raise ConfigError(
                    f"{where}: {part!r} maps to {name!r}, which has no polarity.",
                    hint=f"Map each label to one of: {', '.join(MAPPABLE)}.",
                )
            if pairs.get(label, name) != name:
                raise ConfigError(f"{where}: label {label!r} is mapped twice.")
            pairs[label] = name
        return cls(tuple(pairs.items()))

    def __str__(self) -> str:
        return ",".join(f"{label}={name}" for label, name in self.pairs)

    def names(self, classes: Sequence[str]) -> tuple[tuple[str, ...], str | None]:
        """(the name the answers read for each of `classes`, how they were got: None when
        they are the model's own)."""
        return _names(self, tuple(classes))


@functools.lru_cache(maxsize=64)
def _names(label_map: LabelMap, classes: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    # Cached: the API reads an endpoint's labels from every answer (a hit: ~0.1 us).
    if label_map.pairs:
        given = dict(label_map.pairs)
        named = tuple(given.get(c, c) for c in classes)
        if named == classes:
            return classes, None
        shown = ", ".join(f"{c} as {n}" for c, n in zip(classes, named, strict=True) if c != n)
        return named, f"labels read by {LABEL_MAP_SETTING} ({shown})"
    inferred = ZHANG_NAMES.get(frozenset(classes))
    if inferred is None:
        return classes, None
    table = POLICY_TABLE[inferred[1]][inferred[0]]
    named = tuple(str(table[c]) for c in classes)
    shown = ", ".join(f"{c} {n}" for c, n in zip(classes, named, strict=True))
    return named, (
        f"labels inferred as Zhang's {inferred[0].value} layout ({shown}); "
        f"{LABEL_MAP_SETTING} (--label-map) overrides"
    )
