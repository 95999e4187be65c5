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
    ELONGATED,
    NEGATED,
    NEGATIVE_EMOTICON,
    NUMBER_TOKEN,
    POSITIVE_EMOTICON,
    URL_TOKEN,
    Cleaning,
)
from sentiment.text_kernel import INVISIBLE_CHARS

LITERAL_NEWLINE = re.compile(r"\\[nrt]")
LINE_BREAK = re.compile(r"[\n\r]")
INVISIBLE = re.compile(INVISIBLE_CHARS)  # a character set, defined once
URL = re.compile(r"(?:[hH][tT][tT][pP][sS]?://|[wW][wW][wW]\.)\S+")
EMOTICON = r"(?<!\S)(?:[:;=][\-o\*']?[\)\]\(\[dp/\\|@3]+|<3+|[\)\]\(\[/\\]+[\-o\*']?[:;=])(?!\S)"
NUMBER = re.compile(r"(?<!<)\b\d+(?:[.,:]\d+)*\b")
WORD = r"\w+(?:'\w+)*"
TOKEN = re.compile(f"{WORD}|{EMOTICON}|[^\\w\\s]")
BANGS = r"[!?]{2,}"
TOKEN_WITH_BANGS = re.compile(f"{WORD}|{EMOTICON}|{BANGS}|[^\\w\\s]")
# The token rules: emoticons by the way their mouth faces, emoji of a side, elongations,
# negators.
SMILE = re.compile(
    r"<3+|[:;=][\-o\*']?[\)\]\(\[dp/\\|@3]*[\)\]dp3]|[\(\[][\)\]\(\[/\\]*[\-o\*']?[:;=]"
)
FROWN = re.compile(EMOTICON)  # an emoticon that is not a smile
POSITIVE_EMOJI = re.compile(
    "[\u263a\u2665\u2764\U0001f44d\U0001f618\U0001f642\U0001f929\U0001f970\U0001f600-\U0001f60e]"
)
NEGATIVE_EMOJI = re.compile("[\u2639\U0001f44e\U0001f494\U0001f612\U0001f641\U0001f61e-\U0001f62d]")
LETTER_RUN = re.compile(r"([^\W\d_])\1\1+")
NEGATOR = re.compile(r"not|no|never|cannot|.+n't", re.DOTALL)


def normalize(text: str, cleaning: Cleaning = DEFAULT_CLEANING) -> str:
    if cleaning.unescape_html:
        text = html.unescape(text)
    if cleaning.literal_newlines:
        text = LITERAL_NEWLINE.sub(lambda m: " " if m[0] == "\\t" else "\n", text)
    text = INVISIBLE.sub(" ", text)
    if cleaning.lowercase:
        text = text.lower()
    if cleaning.urls:
        text = URL.sub(f" {URL_TOKEN} ", text)
    if cleaning.numbers:
        text = NUMBER.sub(f" {NUMBER_TOKEN} ", text)
    # A line break ends a negation scope: each line is tokenized and marked on its own (the
    # rules above take it as whitespace, as they do a space).
    return " ".join(t for line in LINE_BREAK.split(text) for t in line_tokens(line, cleaning))


def line_tokens(text: str, cleaning: Cleaning) -> list[str]:
    if not cleaning.split_punctuation:
        tokens = text.split()
    else:
        tokens = (TOKEN_WITH_BANGS if cleaning.elongations else TOKEN).findall(text)
    tokens = [t.lstrip("_") if t.startswith(LABEL_PREFIX) else t for t in tokens]
    return token_rules(tokens, cleaning)


def token_rules(tokens: list[str], cleaning: Cleaning) -> list[str]:
    out: list[str] = []
    negating = False
    for token in tokens:
        word = re.match(r"\w", token) is not None
        elongated = False
        if cleaning.emoticons and (SMILE.fullmatch(token) or POSITIVE_EMOJI.fullmatch(token)):
            token = POSITIVE_EMOTICON
        elif cleaning.emoticons and (FROWN.fullmatch(token) or NEGATIVE_EMOJI.fullmatch(token)):
            token = NEGATIVE_EMOTICON
        elif cleaning.elongations and re.fullmatch(BANGS, token):
            token = "!!" if "?" not in token else "??" if "!" not in token else "?!"
        elif cleaning.elongations:
            token, cuts = LETTER_RUN.subn(r"\1\1", token)
            elongated = cuts > 0
        if cleaning.negation and not word:
            negating = False
        elif cleaning.negation:
            negator = NEGATOR.fullmatch(token) is not None
            if negating and not negator and not token.startswith(NEGATED):
                token = NEGATED + token
            negating = negating or negator
        out.append(token)
        if elongated:
            out.append(ELONGATED)
    return out


# A sentence ends at . ! ? (maybe closed by a quote or bracket) before whitespace, at line
# breaks, or at a semicolon (sentiment.answers); pieces without a word are not sentences.
SENTENCE_BOUNDARY = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|[\r\n]+|;\s*")
WORDY = re.compile(r"\w")


def sentences(text: str) -> list[str]:
    """The sentences of a raw text that hold a word (at least one: the text itself)."""
    return [p for p in SENTENCE_BOUNDARY.split(text) if WORDY.search(p)] or [text]
