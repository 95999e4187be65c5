"""Text normalization: the one definition used by prepare (Spark), evaluate, serve and api.

Training text and served text go through `normalize` with the same `Cleaning`, so what the
model saw in training is what it sees in production. Every rule can be switched off.

The output is always single-space separated tokens with no control characters, and no token
can start with fastText's `__label__` prefix, whatever the user typed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

from sentiment.errors import UsageError

URL_TOKEN = "_url_"
NUMBER_TOKEN = "_num_"
LABEL_PREFIX = "__label__"

_LITERAL_NEWLINE = re.compile(r"\\[nrt]")
# Control, format and separator characters that are not plain spaces: they would break fastText's
# line format or make invisible token differences; they become spaces.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_URL = r"(?:https?://|www\.)\S+"
# Emoticons are whole whitespace-separated chunks, so `:)` and `<3` survive punctuation splitting.
# (Only emoticons that start with punctuation: the lookahead keeps the tokenizer fast.)
_EMOTICON = r"(?=[:;=<\)\]\(\[/\\])(?<!\S)(?:[:;=][\-o\*']?[\)\]\(\[dp/\\|@3]+|<3+|[\)\]\(\[/\\]+[\-o\*']?[:;=])(?!\S)"
# A number stands alone (`12.50`, `1,000`, `3`); `mp3` and `2nd` are words, `<3` is a heart.
# Written to start with `\d` (then look back at the character before it: not a word character,
# not `<`), which lets the regex engine skip ahead to digits: 3x faster than the equivalent
# `(?<!<)\b\d+(?:[.,:]\d+)*\b`, with identical output on every shared review.
_NUMBER = r"\d(?<![<\w]\d)\d*(?:[.,:]\d+)*\b"
# A word is letters/digits/underscore with inner apostrophes; anything else that is not space
# becomes a token of its own (`!`, `?`, emoji).
_WORD = r"\w+(?:'\w+)*"
_URL_ONLY = re.compile(_URL, re.IGNORECASE)
_NUMBER_ONLY = re.compile(_NUMBER)
_TOKEN = re.compile(f"{_WORD}|{_EMOTICON}|[^\\w\\s]")


@dataclass(frozen=True)
class Cleaning:
    """Which normalization rules apply. The defaults are what prepare and serving use."""

    unescape_html: bool = True
    literal_newlines: bool = True
    lowercase: bool = True
    split_punctuation: bool = True
    urls: bool = True
    numbers: bool = True

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cleaning:
        """The cleaning recorded in a manifest or preprocessing.json (unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(
                f"Unknown cleaning option(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}."
            )
        return cls(**{k: bool(v) for k, v in data.items()})


DEFAULT_CLEANING = Cleaning()


def normalize(text: str, cleaning: Cleaning = DEFAULT_CLEANING) -> str:
    """The normalized, space-separated token string for one raw text ("" when nothing is left)."""
    if cleaning.unescape_html and "&" in text:
        text = html.unescape(text)
    if cleaning.literal_newlines and "\\" in text:
        text = _LITERAL_NEWLINE.sub(" ", text)
    text = _INVISIBLE.sub(" ", text)
    if cleaning.lowercase:
        text = text.lower()
    # URLs and numbers are replaced before punctuation splitting, so `12.50` stays one number.
    if cleaning.urls and ("://" in text or "www." in text):
        text = _URL_ONLY.sub(f" {URL_TOKEN} ", text)
    if cleaning.numbers:
        text = _NUMBER_ONLY.sub(f" {NUMBER_TOKEN} ", text)
    tokens = _TOKEN.findall(text) if cleaning.split_punctuation else text.split()
    if LABEL_PREFIX in text:
        tokens = [_safe(t) for t in tokens]
    return " ".join(tokens)


def normalize_many(texts: Iterable[str], cleaning: Cleaning = DEFAULT_CLEANING) -> list[str]:
    """`normalize` over many texts (the shape the Spark job's Arrow batches use)."""
    return [normalize(t, cleaning) for t in texts]


def compose(
    title: str | None, body: str | None, include_title: bool = True, title_weight: int = 1
) -> str:
    """The text of a review: title and body joined (the title often carries the verdict).

    `title_weight` > 1 repeats the title, so its words weigh more in the bag of words: a
    review's title is its summary ("Great value", "Don't buy"), and weighting it 3x was
    measured to gain ~1 point of accuracy on the shared samples (see the README).
    """
    parts = [title or ""] * max(1, title_weight) + [body or ""] if include_title else [body or ""]
    return " ".join(p for p in parts if p)


def _safe(token: str) -> str:
    # fastText reads any token starting with the label prefix as a label: never emit one.
    return token.lstrip("_") if token.startswith(LABEL_PREFIX) else token
