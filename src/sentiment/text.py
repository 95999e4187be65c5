"""Text normalization: the one definition used by prepare (Spark), evaluate, serve and api.

Training text and served text go through `normalize` with the same `Cleaning`, so what the
model saw in training is what it sees in production. Every rule can be switched off.

The output is always single-space separated tokens with no control characters (a line break
in the input ends a negation scope, and is otherwise a space), and no token can start with
fastText's `__label__` prefix, whatever the user typed.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from functools import cache
from typing import Any

import numpy as np

from sentiment.errors import UsageError
from sentiment.text_kernel import INVISIBLE_CHARS

URL_TOKEN = "_url_"
NUMBER_TOKEN = "_num_"
# Tokens of the token rules (`Cleaning.emoticons`, `.elongations`, `.negation`).
POSITIVE_EMOTICON = "_emo_pos_"
NEGATIVE_EMOTICON = "_emo_neg_"
ELONGATED = "_elong_"
NEGATED = "not_"

_INVISIBLE = re.compile(INVISIBLE_CHARS)


@dataclass(frozen=True)
class Cleaning:
    """Which normalization rules apply. The defaults are what prepare and serving use."""

    unescape_html: bool = True
    literal_newlines: bool = True
    lowercase: bool = True
    split_punctuation: bool = True
    urls: bool = True
    numbers: bool = True
    # The token rules (issue 15; what `normalize_many` step 9 says). Negation is on: measured
    # alone against the text without it (benchmarks/text_rules.py, 3 seeds x 3 validation
    # splits) +0.34 point on the shared polarity test and +0.70 on the shared full test
    # (positive against negative), the four answers' figures unchanged within noise, ECE
    # 0.031 -> 0.024, normalizing 1.04-1.08x the time. Emoticons and elongations gained
    # nothing on the shared samples (README, Measured).
    negation: bool = True
    emoticons: bool = False
    elongations: bool = False

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cleaning:
        """The cleaning recorded in a manifest or preprocessing.json (unknown keys are an error).
        A token rule the record does not name is off: the record was written before the rule
        existed, and its model was trained without it."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(
                f"Unknown cleaning option(s): {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(known))}."
            )
        return cls(
            **{**dict.fromkeys(_TOKEN_RULES, False), **{k: switch(k, v) for k, v in data.items()}}
        )


def switch(name: str, value: Any) -> bool:
    """A recorded on/off value: a JSON boolean, or the strings and numbers a hand-edited record
    may hold ("false" read as True by `bool` would turn a rule on that the model never saw)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise UsageError(
        f"Recorded option {name!r} is {value!r}; it must be true or false.",
    )


_TOKEN_RULES = ("negation", "emoticons", "elongations")
# What prepare (so training) and text without a model use.
DEFAULT_CLEANING = Cleaning()
# What a model with no record of its cleaning (no preprocessing.json: trained elsewhere, or
# before the records) is served with: the rules as they were before the token rules.
UNRECORDED_CLEANING = Cleaning.from_dict({})


def normalize(text: str, cleaning: Cleaning = DEFAULT_CLEANING) -> str:
    """The normalized, space-separated token string for one raw text ("" when nothing is left)."""
    kernel, flags, lower = _one_text_kernel()
    out = kernel(text.encode("utf-8", "surrogatepass"), flags, lower, kernel_options(cleaning))
    if out is None:  # a text for the Python path of the rules
        return normalize_many([text], cleaning)[0]
    return str(out.decode("utf-8", "surrogatepass"))


@cache
def _one_text_kernel() -> tuple[Any, np.ndarray, np.ndarray]:
    """The compiled one-text entry and its tables (built on first use), looked up once."""
    from sentiment.text_kernel import normalize_one, tables

    return (normalize_one, *tables())


def normalize_many(texts: Iterable[str], cleaning: Cleaning = DEFAULT_CLEANING) -> list[str]:
    """`normalize` over many texts at once (one kernel call: what the Spark job and batch
    predictions use).

    The rules, in order (tests/text_reference.py has them as regular expressions):
    1. HTML entities unescaped (`&amp;` -> `&`);
    2. the literal two characters `\\n` and `\\r` (the datasets' escapes) become a line
       break, `\\t` a space;
    3. control, format and separator characters other than line breaks (`\\n`, `\\r`)
       become a space;
    4. lower case;
    5. URLs `(?:https?://|www\\.)\\S+` (ASCII case-insensitive) become `_url_`;
    6. numbers standing alone (`12.50`, `1,000`, `3`, not `mp3`, `2nd` or the `3` of `<3`),
       `\\d(?<![<\\w]\\d)\\d*(?:[.,:]\\d+)*\\b`, become `_num_`;
    7. tokens: words `\\w+(?:'\\w+)*`, emoticons that are a whole whitespace-separated chunk
       (`:)`, `:-(`, `;d`, `<3`, `):`), and every other non-space character alone (`!`, `?`,
       emoji); or, with `split_punctuation` off, the whitespace-separated chunks;
    8. tokens starting with `__label__` lose their leading underscores (never a label token);
    9. the token rules, each token in order (`Cleaning`: negation on, the others off):
       `emoticons`: emoticons and emoji of a side (`:)`, `(:`, `<3`, `:d`, U+1F600..) become
       `_emo_pos_`, those of the other (`:(`, `:/`, `):`, U+1F61E..) `_emo_neg_`;
       `elongations`: runs of `!` and `?` (one token, when splitting) become `!!`, `??` or
       `?!`, a letter repeated 3+ times is cut to 2 (`soooo` -> `soo`) and `_elong_` follows
       the token;
       `negation` (on by default): after a negator (`not`, `no`, `never`, `cannot`, a token
       ending in `n't`), every token starting with a word character gets `not_` in front
       (`not good` -> `not not_good`), up to the next token that does not (punctuation, an
       emoticon, an emoji) or the next line break, whichever comes first (so the scope of an
       unpunctuated title stays in the title: `compose` joins title and body by one); a
       negator or a token already marked is left as it is, so normalizing twice changes
       nothing.
    A line break is whitespace to every rule but negation: no token is made of it.
    All of it runs in sentiment.text_kernel, except step 1 and the lower case of a few
    characters (U+0130, capital sigma), which send their text through `_prelude` first.
    """
    from sentiment.text_kernel import normalize_utf8, tables

    texts = list(texts)
    if not texts:
        return []
    encoded = [t.encode("utf-8", "surrogatepass") for t in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    out, fallback = normalize_utf8(b"".join(encoded), offsets, *tables(), kernel_options(cleaning))
    result = out.decode("utf-8", "surrogatepass").split("\n")
    if fallback.any():
        # Steps 1-4 in Python for these few texts (an entity to unescape, an unusual lower
        # case), then the kernel's 5-8 with those steps switched off.
        again = [int(i) for i in np.flatnonzero(fallback)]
        rest = Cleaning(**{**cleaning.to_dict(), **_DONE_IN_PYTHON})
        for i, text in zip(
            again, normalize_many([_prelude(texts[i], cleaning) for i in again], rest), strict=True
        ):
            result[i] = text
    return result


_DONE_IN_PYTHON = {"unescape_html": False, "literal_newlines": False, "lowercase": False}


@cache
def kernel_options(cleaning: Cleaning, include_title: bool = True) -> np.ndarray:
    """The Cleaning switches in the order sentiment.text_kernel reads them (cached: read-only)."""
    switches = np.array(
        [
            cleaning.unescape_html,
            cleaning.literal_newlines,
            cleaning.lowercase,
            cleaning.urls,
            cleaning.numbers,
            cleaning.split_punctuation,
            include_title,
            cleaning.negation,
            cleaning.emoticons,
            cleaning.elongations,
        ],
        dtype=np.uint8,
    )
    switches.flags.writeable = False
    return switches


def _prelude(text: str, cleaning: Cleaning) -> str:
    if cleaning.unescape_html and "&" in text:
        text = html.unescape(text)
    if cleaning.literal_newlines and "\\" in text:
        # Same as re.sub(r"\\[nr]", "\n") then re.sub(r"\\t", " "): the three pairs cannot
        # overlap, and what is put in cannot make a new pair.
        text = text.replace("\\n", "\n").replace("\\r", "\n").replace("\\t", " ")
    if "\u03a3" in text and cleaning.lowercase and not text.isprintable():
        # Step 3 is the kernel's (these texts go through it next), except before the lower
        # case of a capital sigma, the one that depends on its neighbours: a soft hyphen or a
        # zero-width space (case-ignorable) and the space it becomes decide differently whether
        # the sigma ends a word. Done on every text that is not printable (every composed
        # review: its line breaks), it cost 2.9 us a text sent back, 0.15 us a review.
        text = _INVISIBLE.sub(" ", text)
    if cleaning.lowercase:
        text = text.lower()
    return text


def compose(
    title: str | None, body: str | None, include_title: bool = True, title_weight: int = 1
) -> str:
    """The text of a review: title and body joined (the title often carries the verdict).

    `title_weight` > 1 repeats the title, so its words weigh more in the bag of words: a
    review's title is its summary ("Great value", "Don't buy"), and weighting it 3x was
    measured to gain ~1 point of accuracy on the shared samples (see the README).
    The parts are joined by line breaks: a line break ends a negation scope, so a title
    without closing punctuation ("Doesn't heat very well") marks its own words only, not the
    next copy's nor the body's (joined by spaces, 4.9% of the shared full train rows and 8.4%
    of the polarity ones carried the scope on). The prepare job's kernel joins them the same.
    """
    parts = [title or ""] * max(1, title_weight) + [body or ""] if include_title else [body or ""]
    return "\n".join(p for p in parts if p)
