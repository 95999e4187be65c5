"""Label policies: how a review's star rating becomes a class, and the `__label__` prefix.

Defined once here; prepare writes these labels, train learns them, and evaluate, serve and the
API report them. A source row's label is read in its dataset's layout first:
`amazon_review_full` has stars 1..5, `amazon_review_polarity` has 1 (1-2 stars) or 2 (4-5 stars).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from sentiment.errors import UsageError

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
