"""The one text normalization: rules that decide what the model sees in training and serving."""

from __future__ import annotations

from dataclasses import fields

import pytest

from sentiment.errors import UsageError
from sentiment.text import (
    DEFAULT_CLEANING,
    UNRECORDED_CLEANING,
    Cleaning,
    compose,
    normalize,
    normalize_many,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Great!!!", "great ! ! !"),
        ("great! and great", "great ! and great"),
        ("It cost $12.50, not 1,000", "it cost $ _num_ , not not__num_"),
        ("mp3 player, 2nd time", "mp3 player , 2nd time"),
        ("love it <3 :) :-( ;D", "love it <3 :) :-( ;d"),
        ("see http://x.com/a?b=1 or www.y.org.", "see _url_ or _url_"),
        ("Tom &amp; Jerry &quot;ok&quot;", 'tom & jerry " ok "'),
        ("line one\\nline two", "line one line two"),
        ("Don't   stop", "don't not_stop"),
        ("tab\there\x00nul\u200bzero\r\nnew", "tab here nul zero new"),
        ("", ""),
    ],
)
def test_normalize_rules(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize("raw", ["__label__positive great", "x __label__neg", "a ___label__b"])
def test_user_text_never_makes_a_label_token(raw: str) -> None:
    for cleaning in (
        DEFAULT_CLEANING,
        Cleaning(split_punctuation=False),
        Cleaning(lowercase=False),
    ):
        tokens = normalize(raw, cleaning).split(" ")
        assert not any(t.startswith("__label__") for t in tokens)


def test_output_is_single_space_separated() -> None:
    out = normalize("  a\t\tb \n c\x0b\x0cd\u2028e  ")
    assert out == "a b c d e"


def test_rules_switch_off() -> None:
    raw = "Visit HTTP://A.com 12.5 Now!"
    assert normalize(raw, Cleaning(urls=False, numbers=False, lowercase=False)) == (
        "Visit HTTP : / / A . com 12 . 5 Now !"
    )
    assert normalize(raw, Cleaning(split_punctuation=False)) == "visit _url_ _num_ now!"
    assert (
        normalize("&amp;\\n", Cleaning(unescape_html=False, literal_newlines=False))
        == "& amp ; \\ n"
    )


_NEGATION = Cleaning(negation=True)


@pytest.mark.parametrize(
    ("raw", "cleaning", "expected"),
    [
        # Negation: the words after a negator up to punctuation, an emoticon or an emoji.
        ("I don't like it, but fine", _NEGATION, "i don't not_like not_it , but fine"),
        ("Not bad. Never again!", _NEGATION, "not not_bad . never not_again !"),
        ("no no problems", _NEGATION, "no no not_problems"),
        ("cannot 12 stars :) ok", _NEGATION, "cannot not__num_ not_stars :) ok"),
        ("not __label__x", _NEGATION, "not not_label__x"),
        ("nothing notable", _NEGATION, "nothing notable"),  # not negators
        ("not good", Cleaning(negation=False), "not good"),
        # Emoticons and emoji of a side; the others stay tokens of their own.
        (
            "ok :) :-( ;d (: ): <33 :/ =p :o) xd",
            Cleaning(emoticons=True),
            "ok _emo_pos_ _emo_neg_ _emo_pos_ _emo_pos_ _emo_neg_ _emo_pos_ _emo_neg_ "
            "_emo_pos_ _emo_pos_ xd",
        ),
        (
            "\U0001f600\U0001f44e\u2764 \U0001f697 a:)",
            Cleaning(emoticons=True),
            "_emo_pos_ _emo_neg_ _emo_pos_ \U0001f697 a : )",
        ),
        # Elongations: letters cut to two and marked, runs of ! and ? one token.
        (
            "Soooo goooood!!! Really?? what?!? ok! 1000 zzz",
            Cleaning(elongations=True),
            "soo _elong_ good _elong_ !! really ?? what ?! ok ! _num_ zz _elong_",
        ),
        ("wow!!!", Cleaning(elongations=True, split_punctuation=False), "wow!!!"),
        ("!!! ??", Cleaning(elongations=True, split_punctuation=False), "!! ??"),
        # A line break ends the scope as punctuation does: a real one, the datasets' literal
        # `\n` and `\r`, and one an entity or an unusual lower case sends through Python's
        # path; a literal `\t` and other control characters are spaces and do not end it.
        ("Not good\nbad", _NEGATION, "not not_good bad"),
        ("not good\r\nbad\rno way", _NEGATION, "not not_good bad no not_way"),
        ("Not good\\nbad\\rworse", _NEGATION, "not not_good bad worse"),
        ("&amp; not good\\nbad", _NEGATION, "& not not_good bad"),
        (
            "\u039f\u0394\u039f\u03a3 not good\nbad",
            _NEGATION,
            "\u03bf\u03b4\u03bf\u03c2 not not_good bad",
        ),
        (
            "Not good\\tbad\tworse\x0bnone\u2028left",
            _NEGATION,
            "not not_good not_bad not_worse not_none not_left",
        ),
        ("Not good\\nbad", Cleaning(literal_newlines=False), "not not_good \\ nbad"),
        # All of them, in order: a marked word is negated, emoticons end the scope.
        (
            "Not sooo good :( not at all",
            Cleaning(negation=True, emoticons=True, elongations=True),
            "not not_soo _elong_ not_good _emo_neg_ not not_at not_all",
        ),
    ],
)
def test_token_rules(raw: str, cleaning: Cleaning, expected: str) -> None:
    import text_reference

    assert normalize(raw, cleaning) == expected
    assert text_reference.normalize(raw, cleaning) == expected
    assert normalize(raw) == text_reference.normalize(raw)


@pytest.mark.parametrize(
    "cleaning",
    [
        Cleaning(negation=True),
        Cleaning(emoticons=True),
        Cleaning(elongations=True),
        Cleaning(negation=True, emoticons=True, elongations=True),
    ],
)
def test_token_rules_normalize_twice_to_the_same(cleaning: Cleaning) -> None:
    """The API normalizes for a stock BlazingText endpoint, and ours normalizes again when it
    cannot tell which it calls: a second pass must not mark words twice."""
    raw = "I don't like it, sooo bad!!! :( Not worth it?! \U0001f44e never"
    once = normalize(raw, cleaning)
    assert normalize(once, cleaning) == once


def test_a_record_without_the_token_rules_reads_as_todays_text() -> None:
    """A manifest or preprocessing.json written before the token rules (no such keys) stands
    for text made without them; a new record names each rule."""
    before = {
        "unescape_html": True,
        "literal_newlines": True,
        "lowercase": True,
        "split_punctuation": True,
        "urls": True,
        "numbers": True,
    }
    cleaning = Cleaning.from_dict(before)
    assert cleaning == UNRECORDED_CLEANING
    assert normalize("Not sooo good :)", cleaning) == "not sooo good :)"
    assert normalize("Not sooo good :)") == "not not_sooo not_good :)"
    assert Cleaning.from_dict(DEFAULT_CLEANING.to_dict()) == DEFAULT_CLEANING
    assert DEFAULT_CLEANING.to_dict()["negation"] is True


def test_cleaning_round_trips_and_rejects_unknown() -> None:
    cleaning = Cleaning(numbers=False)
    assert Cleaning.from_dict(cleaning.to_dict()) == cleaning
    with pytest.raises(Exception, match="Unknown cleaning"):
        Cleaning.from_dict({"stemming": True})


def test_compose() -> None:
    assert compose("Title", "Body") == "Title\nBody"
    assert compose("Title", "Body", title_weight=3) == "Title\nTitle\nTitle\nBody"
    assert compose("", "Body") == "Body"
    assert compose("Title", None, title_weight=2) == "Title\nTitle"
    assert compose("Title", "Body", include_title=False) == "Body"


# A title with a negator and no closing punctuation (4.9% of the shared full train rows, 8.4%
# of the polarity ones): its scope carried through the title copies into the body when they
# were joined by spaces (`... not_well doesn't not_heat ... not_i not_can not_barely ...`).
_TITLE = "Doesn't heat very well"
_BODY = "I can barely feel the heater when it runs"
_COPY = "doesn't not_heat not_very not_well"
_SCOPED = f"{_COPY} {_COPY} {_COPY} i can barely feel the heater when it runs"


def test_a_titles_negation_scope_ends_with_each_copy() -> None:
    composed = compose(_TITLE, _BODY, title_weight=3)
    assert normalize(composed) == _SCOPED
    assert normalize_many([composed, composed + " &amp;"]) == [_SCOPED, _SCOPED + " &"]
    assert normalize(compose(_TITLE, _BODY, title_weight=3), UNRECORDED_CLEANING) == (
        normalize(f"{_TITLE} {_TITLE} {_TITLE} {_BODY}", UNRECORDED_CLEANING)
    )  # without negation marking, the text is what it was


@pytest.mark.parametrize("body", [_BODY, _BODY + " &amp; more"])  # the kernel's path; Python's
def test_the_prepare_kernel_composes_as_compose_does(body: str) -> None:
    """The prepare job's compiled row cleaning (a line the kernel takes) and its Python row path
    (an entity sends the line there) give the scope of the title to each copy alone."""
    import numpy as np

    from sentiment.labels import Layout, Policy
    from sentiment.reviews import LAYOUT_CODES, SPLIT_CODES, RowOptions, clean_lines, clean_rows
    from sentiment.text_kernel import FALLBACK, KEPT

    expected = normalize(compose(_TITLE, body, title_weight=3))
    assert expected.startswith(_SCOPED)
    line = f'"1","{_TITLE}","{body}"\n'.encode()
    got = clean_lines(
        np.frombuffer(line, np.uint8),
        np.array([0, len(line)], np.int64),
        np.array([LAYOUT_CODES[Layout.FULL]], np.int8),
        np.array([SPLIT_CODES["test"]], np.int8),
        Policy.BINARY,
        RowOptions(),
        1,
        0.0,
    )
    if "&" in body:
        assert got.status[0] == FALLBACK
    else:
        assert got.status[0] == KEPT
        assert got.texts.tobytes().decode() == expected
    [(_label, text, _reason)] = clean_rows(
        [(Layout.FULL, "1", _TITLE, body)], Policy.BINARY, RowOptions()
    )
    assert text == expected


# The compiled kernel against the rules written as regular expressions (tests/text_reference.py).


def _shared_texts() -> list[str]:
    from conftest import FULL, POLARITY, read_reviews

    texts = []
    for folder in (FULL, POLARITY):
        for name in ("train.csv", "test.csv"):
            for _label, title, body in read_reviews(folder / name):
                texts += [title, body, compose(title, body, title_weight=3)]
    return texts


@pytest.mark.slow
def test_kernel_matches_the_regex_rules_on_every_shared_review() -> None:
    import text_reference

    texts = _shared_texts()
    assert len(texts) > 150_000
    for cleaning in (
        DEFAULT_CLEANING,
        Cleaning(split_punctuation=False, numbers=False),
        Cleaning(negation=True, emoticons=True, elongations=True),
        Cleaning(negation=False, elongations=True, lowercase=False),
        UNRECORDED_CLEANING,
    ):
        fast = normalize_many(texts, cleaning)
        slow = [text_reference.normalize(t, cleaning) for t in texts]
        mismatches = [(t, a, b) for t, a, b in zip(texts, slow, fast, strict=True) if a != b]
        assert not mismatches[:3]


# Characters the rules treat specially, plus a few of every kind the classes separate.
_ALPHABET = (
    " \t\n\r\x00\x0b\x1f\x85\xa0\u2028\u3000\u200b\ufeff\u00ad"  # spaces, controls, invisibles
    "aZ_'\"-:;=<3)](/\\|@[*dopDPOx09½²٣"  # emoticon pieces, words, digits of other scripts
    ".,!?$&#\\ntr"  # joiners, entities, literal newlines
    "éÉ\u0301ßİΣςǅ😀😞👍\u2764🚗"  # letters that change length or case, marks, emoji
    "htpswHTPSW/."  # URL pieces
)
_PIECES = [
    "http://",
    "HTTPS://",
    "www.",
    "10:30",
    "2.5",
    " 7,",
    "&amp;",
    "&#39;",
    "\\n",
    "\\r",
    "\\t",
    "\r\n",
    "__label__",
    ":-)",
    "<3",
    "1,000.5",
    "not ",
    "n't",
    "never",
    "cannot",
    "not_",
    "ooo",
    "!!?",
    ":(",
    "(:",
]


@pytest.mark.slow
def test_kernel_matches_the_regex_rules_on_generated_text() -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import text_reference

    text = st.lists(
        st.one_of(st.text(_ALPHABET, max_size=6), st.sampled_from(_PIECES)), max_size=12
    ).map("".join)
    cleanings = st.builds(Cleaning, *[st.booleans()] * len(fields(Cleaning)))

    @settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(texts=st.lists(text | st.text(max_size=40), min_size=1, max_size=5), cleaning=cleanings)
    def check(texts: list[str], cleaning: Cleaning) -> None:
        assert normalize_many(texts, cleaning) == [
            text_reference.normalize(t, cleaning) for t in texts
        ]
        assert [normalize(t, cleaning) for t in texts] == normalize_many(texts, cleaning)

    check()


def test_normalize_many_keeps_one_result_per_text() -> None:
    assert normalize_many([]) == []
    assert normalize_many([""]) == [""]
    assert normalize_many(["", "A!", "", "\n"]) == ["", "a !", "", ""]


@pytest.mark.parametrize(
    "raw",
    [
        "lone \ud800 surrogate",  # JSON allows "\ud800"; the kernel keeps it as a character
        "Ünïcödé İstanbul ΣΟΦΙΑ ΟΔΟΣ",  # lower case that is not one character, or contextual
        "&lt;3 &amp; \\N not a newline",  # entities first, then the literal-newline rule
        "\ufffd replacement char",
        "\u0391\u03a3\u00adb \u0391\u03a3\u200b\n\u0391\u03a3",  # sigma by an invisible or a line break
        "😀😀 ok",
    ],
)
def test_kernel_fallbacks_match_the_regex_rules(raw: str) -> None:
    import text_reference

    assert normalize(raw) == text_reference.normalize(raw)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"min_tokens": 40, "title_weight": 1},
        {"include_title": False, "dedupe": False},
        {"lowercase": False, "numbers": False, "split_punctuation": False},
        {"negation": True, "emoticons": True, "elongations": True},
    ],
)
def test_csv_kernel_matches_the_python_row_path(options: dict[str, object]) -> None:
    """The prepare job's compiled row cleaning (parse, policy, compose, normalize, split) gives,
    line for line, what parse_line / clean_rows / split_of give (FALLBACK lines are theirs)."""
    import numpy as np

    from conftest import FULL, POLARITY
    from sentiment.labels import POLICY_CLASSES, Layout, Policy
    from sentiment.reviews import (
        LAYOUT_CODES,
        SPLIT_CODES,
        RowOptions,
        clean_lines,
        clean_rows,
        parse_line,
        row_code,
        split_of,
    )
    from sentiment.text_kernel import DROP_POLICY, DROP_SHORT, FALLBACK, KEPT, REJECT_LABEL

    row_options = RowOptions.from_dict(options)
    statuses = {DROP_POLICY: "dropped_by_policy", DROP_SHORT: "too_short"}
    statuses[REJECT_LABEL] = "label_outside_layout"
    for path, layout in (
        (FULL / "test.csv", Layout.FULL),
        (POLARITY / "test.csv", Layout.POLARITY),
    ):
        raw = path.read_bytes().splitlines(keepends=True)
        raw += [b'"7","bad","label"\n', b'"5","ok","caf\xc3\xa9 &amp; more"\n', b'"5","short",""\n']
        data = np.frombuffer(b"".join(raw), np.uint8)
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in raw])]).astype(np.int64)
        n = len(raw)
        layouts = np.full(n, LAYOUT_CODES[layout], np.int8)
        splits = np.full(n, SPLIT_CODES["train"], np.int8)
        got = clean_lines(data, offsets, layouts, splits, Policy.BINARY, row_options, 3, 0.2)
        kept = 0
        for i, line in enumerate(raw):
            if got.status[i] == FALLBACK:
                continue
            fields, reason = parse_line(line.decode())
            assert fields is not None, line
            [(label, text, reason)] = clean_rows(
                [(layout, fields[0], fields[1], fields[2])], Policy.BINARY, row_options
            )
            if got.status[i] == KEPT:
                assert reason is None and label is not None
                start, end = got.text_offsets[kept], got.text_offsets[kept + 1]
                assert got.texts[start:end].tobytes().decode() == text
                code = row_code(
                    split_of("train", text, 3, 0.2), POLICY_CLASSES[Policy.BINARY].index(label)
                )
                assert got.code[i] == code
                kept += 1
            else:
                assert reason == statuses[int(got.status[i])], line
        assert kept == len(got.text_offsets) - 1 and kept > 0
        assert (got.status == FALLBACK).mean() < 0.2


def test_recorded_switches_read_as_written() -> None:
    """A hand-edited record's "false" used to read as True (`bool("false")`), serving a model
    with a rule it was never trained with; values that are no switch are refused."""
    cleaning = Cleaning.from_dict({"negation": "false", "lowercase": "True", "numbers": 0})
    assert (cleaning.negation, cleaning.lowercase, cleaning.numbers) == (False, True, False)
    with pytest.raises(UsageError, match="'urls' is 'maybe'"):
        Cleaning.from_dict({"urls": "maybe"})


def test_recorded_row_options_read_as_written() -> None:
    """The row options beside a model's cleaning (how evaluate composes a review CSV's rows as
    prepare did) are read like the cleaning: `bool("false")` used to put the title back in
    and so score text the model was never trained on."""
    from sentiment.reviews import RowOptions

    options = RowOptions.from_dict(
        {"include_title": "false", "title_weight": "2", "dedupe": 0, "negation": False}
    )
    assert (options.include_title, options.title_weight, options.dedupe) == (False, 2, False)
    assert not options.cleaning.negation
    for bad, match in (
        ({"include_title": "no title"}, "'include_title' is 'no title'"),
        ({"title_weight": 0}, "'title_weight' is 0; it must be a whole number from 1 to 10"),
        ({"title_weight": 2.5}, "'title_weight' is 2.5"),
        ({"min_tokens": True}, "'min_tokens' is True"),
    ):
        with pytest.raises(UsageError, match=match):
            RowOptions.from_dict(bad)
