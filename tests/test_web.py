"""The web page in a real headless Chromium, against a real `sentiment api` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SCREENSHOTS, Process, free_port

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def api_url(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("web") / "api.log"
    process = Process(
        ["api", "--model", str(tiny_model_dir / "model.bin"), "--port", str(port)], log
    )
    url = f"http://127.0.0.1:{port}"
    process.wait_for(f"{url}/healthz")
    yield url
    process.stop()


def test_type_submit_by_keyboard_and_read_results(page: Any, api_url: str) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    console: list[str] = []  # a Content-Security-Policy violation is reported here
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.goto(f"{api_url}/")
    assert page.title() == "sentiment"
    page.get_by_label("Reviews (one per line)").fill(
        "I love this phone, the battery lasts for days! :)\n\nBroke after a week. Don't buy it :(\n"
        + "x" * 5001
    )
    page.get_by_label("Reviews (one per line)").press("Control+Enter")
    page.wait_for_selector("li.result >> nth=2")
    items = page.locator("li.result")
    assert items.count() == 3  # the empty line is skipped, the oversized one is shown as an error
    first, second, third = (items.nth(i) for i in range(3))
    assert (
        "positive" in first.get_attribute("class")
        and first.locator(".verdict").inner_text() == "Positive"  # capitalized by CSS
    )
    assert "negative" in second.get_attribute("class")
    assert "error" in third.get_attribute("class") and "limit is 5,000" in third.inner_text()
    width = first.locator(".bar > span").evaluate("e => e.style.width")
    assert width.endswith("%") and 50 <= float(width[:-1]) <= 100
    colour = first.locator(".bar > span").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(26, 127, 55)"  # green for positive
    assert (
        second.locator(".bar > span").evaluate("e => getComputedStyle(e).backgroundColor")
        == "rgb(207, 34, 46)"
    )
    assert "2 analyzed, 1 not analyzed" in page.locator("#status").inner_text()
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
