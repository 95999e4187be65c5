"""Text normalization: the one definition used by prepare (Spark), evaluate, serve and api.

Training text and served text go through `normalize` with the same `Cleaning`, so what the
model saw in training is what it sees in production. Every rule can be switched off.
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

_LITERAL_NEWLINE = re.compile(r"\\n")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
# Emoticons survive punctuation splitting as whole tokens.
_EMOTICON = re.compile(r"(?<!\S)(?:[:;=8][\-o\*']?[\)\]\(\[dDpP/\\|@3]+|<3+|[\)\]\(\[dDpP/\\]+[\-o\*']?[:;=8])(?!\S)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A word is letters/digits/underscore with inner apostrophes; anything else that is not space
# becomes a token of its own.
_TOKEN = re.compile(r"\w+(?:'\w+)*|[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


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
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"Unknown cleaning option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}.")
        return cls(**{k: bool(v) for k, v in data.items()})


DEFAULT_CLEANING = Cleaning()


def normalize(text: str, cleaning: Cleaning = DEFAULT_CLEANING) -> str:
    """The normalized, space-separated token string for one raw text."""
    if cleaning.unescape_html:
        text = html.unescape(text)
    if cleaning.literal_newlines:
        text = _LITERAL_NEWLINE.sub(" ", text)
    if cleaning.urls:
        text = _URL.sub(f" {URL_TOKEN} ", text)
    if cleaning.lowercase:
        text = text.lower()
    if cleaning.split_punctuation:
        text = " ".join(_split(text))
    if cleaning.numbers:
        text = _NUMBER.sub(NUMBER_TOKEN, text)
    return _SPACE.sub(" ", text).strip()


def normalize_many(texts: Iterable[str], cleaning: Cleaning = DEFAULT_CLEANING) -> list[str]:
    return [normalize(t, cleaning) for t in texts]


def compose(title: str | None, body: str | None, include_title: bool = True) -> str:
    """The text of a review: title and body joined (the title often carries the verdict)."""
    parts = [title or "", body or ""] if include_title else [body or ""]
    return " ".join(p for p in parts if p)


def _split(text: str) -> list[str]:
    out: list[str] = []
    for chunk in text.split():
        if _EMOTICON.fullmatch(chunk):
            out.append(chunk)
        else:
            out.extend(_TOKEN.findall(chunk))
    return out
