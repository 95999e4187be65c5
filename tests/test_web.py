"""The web page in a real headless Chromium, against a real `sentiment api` process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import SCREENSHOTS, open_page, start_api
from sentiment.model import load_model

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def api_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Small batches and a high bar for certainty, so the page must read both from the API.
    settings = {"SENTIMENT_API_MAX_TEXTS": "3", "SENTIMENT_UNCERTAIN_BELOW": "0.9"}
    process, url = start_api(
        tmp_path_factory.mktemp("web") / "api.log",
        *("--model", str(tiny_model_dir / "model.bin")),
        env=settings,
    )
    yield url
    process.stop()


REVIEWS = [
    "I love this phone, the battery lasts for days! :)",
    "Broke after a week. Don't buy it :(",
    "Great camera. Terrible battery.",
    "it is a phone",
    '<img src=x onerror="document.title=1">',
    "x" * 5001,
]
COLOURS = {
    "positive": "rgb(26, 127, 55)",
    "negative": "rgb(207, 34, 46)",
    "neutral": "rgb(110, 119, 129)",
    "mixed": "rgb(130, 80, 223)",
}


@dataclass
class Analyzed:
    """The page after it analyzed REVIEWS, with what it requested and logged on the way."""

    page: Any
    requests: list[str]
    console: list[str]  # a Content-Security-Policy violation is reported here

    def result(self, i: int) -> Any:
        return self.page.locator("li.result").nth(i)


@pytest.fixture(scope="module")
def analyzed(browser: object, api_url: str) -> Iterator[Analyzed]:
    """One page, one analysis of REVIEWS (the empty line skipped): the tests below each read one
    behaviour of it, so the first that fails does not hide the others."""
    with open_page(browser) as page:
        seen = Analyzed(page, [], [])
        page.on("request", lambda r: seen.requests.append(r.url))
        page.on("console", lambda m: seen.console.append(f"{m.type}: {m.text}"))
        page.goto(f"{api_url}/")
        page.wait_for_function("document.getElementById('limits').textContent.length > 0")
        box = page.get_by_label("Reviews (one per line)")
        box.fill("\n".join([*REVIEWS[:2], "", *REVIEWS[2:]]))
        box.press("Control+Enter")
        page.wait_for_selector("li.result >> nth=5")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "web-page.png"), full_page=True)
        yield seen


@pytest.fixture(scope="module")
def answers(tiny_model_dir: Path) -> list[str]:
    """The answers the API gives to REVIEWS[:4]: sentiment.answers' (tests/test_api_answers.py)."""
    found = [a.sentiment for a in load_model(tiny_model_dir / "model.bin").answers(REVIEWS[:4])]
    assert found[:2] == ["positive", "negative"]
    return found


def test_the_page_says_the_apis_limits(analyzed: Analyzed) -> None:
    assert analyzed.page.title() == "sentiment"
    note = analyzed.page.locator("#limits").inner_text()
    assert "Up to 3 reviews a request" in note
    assert "5,000 bytes each" in note and "below 90%" in note


def test_one_result_a_review_the_empty_line_skipped(analyzed: Analyzed) -> None:
    assert analyzed.page.locator("li.result").count() == 6


@pytest.mark.parametrize("i", range(4))
def test_a_result_shows_the_review_and_the_apis_answer(
    analyzed: Analyzed, answers: list[str], i: int
) -> None:
    li = analyzed.result(i)
    assert answers[i] in li.get_attribute("class").split()
    assert li.locator(".verdict").inner_text() == answers[i].capitalize()  # CSS capitalizes
    assert li.locator(".text").inner_text() == REVIEWS[i]


@pytest.mark.parametrize("i", range(4))
def test_a_result_shows_four_scores_that_sum_to_one(analyzed: Analyzed, i: int) -> None:
    li = analyzed.result(i)
    bars = li.locator(".scores .bar")
    assert bars.count() == 4
    shown = [float(bars.nth(j).get_attribute("aria-valuenow")) for j in range(4)]
    assert 98 <= sum(shown) <= 102  # rounded each
    assert li.locator(".scores .name").all_inner_texts() == list(map(str.capitalize, COLOURS))
    for j, name in enumerate(COLOURS):
        fill = bars.nth(j).locator("span")
        assert fill.evaluate("e => getComputedStyle(e).backgroundColor") == COLOURS[name]
        assert abs(float(fill.evaluate("e => e.style.width")[:-1]) - shown[j]) <= 0.6


def test_an_answer_below_the_apis_bar_is_marked_uncertain(analyzed: Analyzed) -> None:
    # "it is a phone" is 71% positive: below the API's 90%.
    unsure = analyzed.result(3)
    assert "uncertain" in unsure.get_attribute("class").split()
    assert unsure.locator(".badge").inner_text() == "uncertain"
    assert unsure.locator(".badge").get_attribute("title") == "The answer's score is below 90%."
    assert analyzed.result(0).locator(".badge").count() == 0


def test_markup_in_a_review_is_shown_as_text_never_run(analyzed: Analyzed) -> None:
    assert analyzed.result(4).locator(".text").inner_text() == REVIEWS[4]
    assert analyzed.page.locator("li.result img").count() == 0
    assert analyzed.page.title() == "sentiment"


def test_an_oversized_review_is_an_error_of_its_own(analyzed: Analyzed) -> None:
    oversized = analyzed.result(5)
    assert "error" in oversized.get_attribute("class").split()
    assert "limit is 5,000" in oversized.inner_text()
    status = analyzed.page.locator("#status").inner_text()
    assert "5 analyzed (" in status and "1 not analyzed" in status


def test_reviews_go_in_batches_of_the_apis_limit_and_nowhere_else(
    analyzed: Analyzed, api_url: str
) -> None:
    posts = [u for u in analyzed.requests if u.endswith("/sentiment")]
    assert len(posts) == 2  # 6 reviews in batches of the API's 3
    offsite = [u for u in analyzed.requests if not u.startswith(api_url)]
    assert offsite == [], "the page must work offline (no CDN)"


def test_the_page_runs_whole_under_its_content_security_policy(analyzed: Analyzed) -> None:
    assert "script-src 'sha256-" in analyzed.page.evaluate(
        "fetch('/').then(r => r.headers.get('content-security-policy'))"
    )
    assert analyzed.console == []


def test_button_by_tab_and_empty_input_message(page: Any, api_url: str) -> None:
    page.goto(f"{api_url}/")
    page.get_by_label("Reviews (one per line)").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "analyze"
    page.keyboard.press("Enter")
    assert "at least one review" in page.locator("#status").inner_text()
    page.get_by_label("Reviews (one per line)").fill("Great value, works perfectly")
    page.get_by_label("Reviews (one per line)").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector("li.result")
    assert page.locator("li.result .verdict").inner_text() == "Positive"


def test_interactive_docs_run_under_their_policy(page: Any, api_url: str) -> None:
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.goto(f"{api_url}/docs")
    page.click("#operations-default-sentiment_sentiment_post .opblock-summary")
    page.click("text=Try it out")
    page.click("text=Execute")
    page.wait_for_selector(".live-responses-table .response-col_status >> text=200")
    page.goto(f"{api_url}/redoc")
    page.wait_for_selector("text=POST /sentiment >> nth=0", timeout=20_000)
    # ReDoc's logo from its CDN is blocked (the docs stay offline); nothing of ours is.
    blocked = [line for line in console if "Content Security Policy" in line]
    assert all("https://cdn.redoc.ly/" in line for line in blocked), blocked
