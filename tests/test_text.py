"""The one text normalization: rules that decide what the model sees in training and serving."""

from __future__ import annotations

import pytest

from sentiment.text import DEFAULT_CLEANING, Cleaning, compose, normalize


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Great!!!", "great ! ! !"),
        ("great! and great", "great ! and great"),
        ("It cost $12.50, not 1,000", "it cost $ _num_ , not _num_"),
        ("mp3 player, 2nd time", "mp3 player , 2nd time"),
        ("love it <3 :) :-( ;D", "love it <3 :) :-( ;d"),
        ("see http://x.com/a?b=1 or www.y.org.", "see _url_ or _url_"),
        ("Tom &amp; Jerry &quot;ok&quot;", 'tom & jerry " ok "'),
        ("line one\\nline two", "line one line two"),
        ("Don't   stop", "don't stop"),
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


def test_cleaning_round_trips_and_rejects_unknown() -> None:
    cleaning = Cleaning(numbers=False)
    assert Cleaning.from_dict(cleaning.to_dict()) == cleaning
    with pytest.raises(Exception, match="Unknown cleaning"):
        Cleaning.from_dict({"stemming": True})


def test_compose() -> None:
    assert compose("Title", "Body") == "Title Body"
    assert compose("", "Body") == "Body"
    assert compose("Title", "Body", include_title=False) == "Body"
