"""The normalization rules, and the sentence splitting of the four answers, written as the
regular expressions they are specified as.

`sentiment.text.normalize` implements them in compiled code (sentiment/_text.c, ~10x faster
than Python's `re`), `sentiment.answers.sentences` too (sentiment/_sentences.c); this slow,
obviously-correct form is the oracle the tests compare them with. Same order of rules, same
switches.
"""

from __future__ import annotations

import html
import re

from sentiment.labels import LABEL_PREFIX
from sentiment.text import (
    DEFAULT_CLEANING,
    NUMBER_TOKEN,
    URL_TOKEN,
    Cleaning,
)
from sentiment.text_kernel import INVISIBLE_CHARS

LITERAL_NEWLINE = re.compile(r"\\[nrt]")
INVISIBLE = re.compile(INVISIBLE_CHARS)  # a character set, defined once
URL = re.compile(r"(?:[hH][tT][tT][pP][sS]?://|[wW][wW][wW]\.)\S+")
EMOTICON = r"(?<!\S)(?:[:;=][\-o\*']?[\)\]\(\[dp/\\|@3]+|<3+|[\)\]\(\[/\\]+[\-o\*']?[:;=])(?!\S)"
NUMBER = re.compile(r"(?<!<)\b\d+(?:[.,:]\d+)*\b")
WORD = r"\w+(?:'\w+)*"
TOKEN = re.compile(f"{WORD}|{EMOTICON}|[^\\w\\s]")


def normalize(text: str, cleaning: Cleaning = DEFAULT_CLEANING) -> str:
    if cleaning.unescape_html:
        text = html.unescape(text)
    if cleaning.literal_newlines:
        text = LITERAL_NEWLINE.sub(" ", text)
    text = INVISIBLE.sub(" ", text)
    if cleaning.lowercase:
        text = text.lower()
    if cleaning.urls:
        text = URL.sub(f" {URL_TOKEN} ", text)
    if cleaning.numbers:
        text = NUMBER.sub(f" {NUMBER_TOKEN} ", text)
    tokens = TOKEN.findall(text) if cleaning.split_punctuation else text.split()
    tokens = [t.lstrip("_") if t.startswith(LABEL_PREFIX) else t for t in tokens]
    return " ".join(tokens)


# A sentence ends at . ! ? (maybe closed by a quote or bracket) before whitespace, at line
# breaks, or at a semicolon (sentiment.answers); pieces without a word are not sentences.
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|[\r\n]+|;\s*")
WORDY = re.compile(r"\w")


def sentences(text: str) -> list[str]:
    """The sentences of a raw text that hold a word (at least one: the text itself)."""
    return [p for p in SENTENCE_BOUNDARY.split(text) if WORDY.search(p)] or [text]
