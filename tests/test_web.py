"""The web page in a real headless Chromium, against a real `sentiment api` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SCREENSHOTS, Process, free_port
from sentiment.model import load_model

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def api_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("web") / "api.log"
    # Small batches and a high bar for certainty, so the page must read both from the API.
    settings = {"SENTIMENT_API_MAX_TEXTS": "3", "SENTIMENT_UNCERTAIN_BELOW": "0.9"}
    process = Process(
        ["api", "--model", str(tiny_model_dir / "model.bin"), "--port", str(port)], log, settings
    )
    url = f"http://127.0.0.1:{port}"
    process.wait_for(f"{url}/healthz")
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


def test_four_scores_uncertainty_and_limits_from_the_api(
    page: Any, api_url: str, tiny_model_dir: Path
) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    console: list[str] = []  # a Content-Security-Policy violation is reported here
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.goto(f"{api_url}/")
    assert page.title() == "sentiment"
    note = page.locator("#limits")
    page.wait_for_function("document.getElementById('limits').textContent.length > 0")
    assert "Up to 3 reviews a request" in note.inner_text()
    assert "5,000 bytes each" in note.inner_text() and "below 90%" in note.inner_text()
    box = page.get_by_label("Reviews (one per line)")
    box.fill("\n".join([*REVIEWS[:2], "", *REVIEWS[2:]]))
    box.press("Control+Enter")
    page.wait_for_selector("li.result >> nth=5")
    items = page.locator("li.result")
    assert items.count() == 6  # the empty line is skipped, the oversized one is an error
    # The answers the API gives are sentiment.answers' (tests/test_api_answers.py).
    sentiments = [
        a.sentiment for a in load_model(tiny_model_dir / "model.bin").answers(REVIEWS[:4])
    ]
    assert sentiments[:2] == ["positive", "negative"]
    for i, sentiment in enumerate(sentiments):
        li = items.nth(i)
        assert sentiment in li.get_attribute("class").split()
        assert li.locator(".verdict").inner_text() == sentiment.capitalize()  # CSS capitalizes
        assert li.locator(".text").inner_text() == REVIEWS[i]
        bars = li.locator(".scores .bar")
        assert bars.count() == 4
        shown = [float(bars.nth(j).get_attribute("aria-valuenow")) for j in range(4)]
        assert 98 <= sum(shown) <= 102  # the four scores sum to 1 (rounded each)
        names = li.locator(".scores .name").all_inner_texts()
        assert names == ["Positive", "Negative", "Neutral", "Mixed"]
        for j, name in enumerate(["positive", "negative", "neutral", "mixed"]):
            fill = bars.nth(j).locator("span")
            assert fill.evaluate("e => getComputedStyle(e).backgroundColor") == COLOURS[name]
            width = float(fill.evaluate("e => e.style.width")[:-1])
            assert abs(width - shown[j]) <= 0.6
    # "it is a phone" is 71% positive: below the API's 90%, so marked uncertain.
    unsure = items.nth(3)
    assert "uncertain" in unsure.get_attribute("class").split()
    assert unsure.locator(".badge").inner_text() == "uncertain"
    assert unsure.locator(".badge").get_attribute("title") == "The answer's score is below 90%."
    assert items.nth(0).locator(".badge").count() == 0
    # Markup in a review is shown as text, never run.
    assert items.nth(4).locator(".text").inner_text() == REVIEWS[4]
    assert page.locator("li.result img").count() == 0 and page.title() == "sentiment"
    assert (
        "error" in items.nth(5).get_attribute("class")
        and "limit is 5,000" in items.nth(5).inner_text()
    )
    assert "5 analyzed (" in page.locator("#status").inner_text()
    assert "1 not analyzed" in page.locator("#status").inner_text()
    posts = [u for u in requests if u.endswith("/sentiment")]
    assert len(posts) == 2  # 6 reviews in batches of the API's 3
    assert all(u.startswith(api_url) for u in requests), "the page must work offline (no CDN)"
    assert "script-src 'sha256-" in page.evaluate(
        "fetch('/').then(r => r.headers.get('content-security-policy'))"
    )
    assert console == [], console  # the page runs whole under its policy
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "web-page.png"), full_page=True)


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
