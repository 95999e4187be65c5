"""The public API: against a real `sentiment serve` process, and with the model in-process."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Process, free_port, thread_server
from sentiment.api.app import _has_word, create_app
from sentiment.api.predictors import EndpointPredictor, LocalPredictor
from sentiment.config import Settings
from sentiment.model import load_model
from sentiment.text import normalize


def _settings(**changes: Any) -> Settings:
    return Settings.load({}, environ={}).replace(**changes)


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _post(
    app: Any, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> httpx.Response:
    async with _client(app) as client:
        if raw is not None:
            return await client.post(
                "/sentiment",
                content=raw,
                headers={"content-type": "application/json", **(headers or {})},
            )
        return await client.post("/sentiment", json=body, headers=headers or {})


@pytest.fixture
def endpoint_app(endpoint: str) -> Any:
    return create_app(_settings(endpoint_url=endpoint), EndpointPredictor(endpoint, timeout=5))


@pytest.fixture(scope="module")
def local_app(tiny_model_dir: Path) -> Any:
    return create_app(_settings(), LocalPredictor(load_model(tiny_model_dir / "model.bin")))


def test_single_text_through_the_endpoint(endpoint_app: Any) -> None:
    response = _run(_post(endpoint_app, {"text": "I love this product, works great :)"}))
    assert response.status_code == 200
    body = response.json()
    (result,) = body["results"]
    assert result["index"] == 0 and result["text"] == "I love this product, works great :)"
    assert result["sentiment"] == "positive" and result["uncertain"] is False
    assert list(result["scores"]) == ["positive", "negative", "neutral", "mixed"]
    assert result["confidence"] == result["scores"][result["sentiment"]]
    assert abs(sum(result["scores"].values()) - 1) < 1e-5
    # The model's own probabilities of the whole text stay beside the four answers.
    assert set(result["label_scores"]) == {"positive", "negative"}
    assert abs(sum(result["label_scores"].values()) - 1) < 1e-3
    assert body["errors"] == []
    model = body["model"]
    assert model["labels"] == ["negative", "positive"] and model["source"] == "endpoint"
    assert model["sentiments"] == ["positive", "negative", "neutral", "mixed"]
    assert model["calibrated"] is False  # our endpoint says so: the tiny model has no calibration
    assert model["derivation"].startswith("binary model") and "uncalibrated" in model["derivation"]
    assert model["uncertain_below"] == 0.5 and model["neutral_threshold"] is None


def test_endpoint_and_in_process_agree(
    endpoint_app: Any, local_app: Any, tiny_model_dir: Path
) -> None:
    texts = [
        "Broke after two days, waste of money",
        "Five stars, would buy again",
        "it is a phone",
        "Great camera. Terrible battery.",
    ]
    via_endpoint = _run(_post(endpoint_app, {"texts": texts})).json()["results"]
    in_process = _run(_post(local_app, {"texts": texts})).json()["results"]
    assert [r["sentiment"] for r in via_endpoint] == [r["sentiment"] for r in in_process]
    for a, b in zip(via_endpoint, in_process, strict=True):
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
        assert a["label_scores"] == pytest.approx(b["label_scores"], abs=1e-5)
    assert [r["sentiment"] for r in via_endpoint[:2]] == ["negative", "positive"]
    # The four answers are sentiment.answers' over the texts and their sentences.
    model = load_model(tiny_model_dir / "model.bin")
    for result, answer in zip(via_endpoint, model.answers(texts), strict=True):
        assert result["sentiment"] == answer.sentiment
        assert result["scores"] == pytest.approx(answer.scores, abs=1e-5)
    assert via_endpoint[3]["scores"]["mixed"] > 0  # one glowing and one damning sentence


def test_per_item_errors_beside_successes(endpoint_app: Any) -> None:
    texts = ["great", "", "x" * 5001, "   ", "terrible", "é" * 2501]
    body = _run(_post(endpoint_app, {"texts": texts})).json()
    assert [r["index"] for r in body["results"]] == [0, 4]
    assert [(e["index"], e["code"]) for e in body["errors"]] == [
        (1, "empty_text"),
        (2, "text_too_large"),
        (3, "empty_text"),
        (5, "text_too_large"),  # 2,501 characters but 5,002 UTF-8 bytes
    ]
    assert "5,001 UTF-8 bytes; the limit is 5,000" in body["errors"][1]["message"]


def test_batch_limit_and_configurable_limits(endpoint: str) -> None:
    app = create_app(_settings(endpoint_url=endpoint), EndpointPredictor(endpoint))
    too_many = _run(_post(app, {"texts": ["ok"] * 26}))
    assert too_many.status_code == 400
    assert too_many.json()["message"].startswith("Too many texts: 26; at most 25 per request.")
    small = create_app(
        _settings(api_max_texts=2, api_max_text_bytes=3), EndpointPredictor(endpoint)
    )
    assert _run(_post(small, {"texts": ["a", "b", "c"]})).status_code == 400
    assert _run(_post(small, {"texts": ["abcd"]})).json()["errors"][0]["code"] == "text_too_large"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{not json", "body"),
        (b"[]", "body"),
        (b'"text"', "body"),
        (b"{}", "text"),
        (b'{"text": 5}', "text"),
        (b'{"texts": "one"}', "texts"),
        (b'{"texts": ["ok", 3]}', "texts[1]"),
        (b'{"texts": []}', "texts"),
        (b'{"text": "a", "texts": ["b"]}', "texts"),
        (b'{"txt": "a"}', "txt"),
        (b'{"text": null}', "text"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(local_app: Any, raw: bytes, field: str) -> None:
    response = _run(_post(local_app, None, raw=raw))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "bad_request" and body["field"] == field and body["message"]


def test_neutral_threshold_and_uncertainty(tiny_model_dir: Path) -> None:
    model = load_model(tiny_model_dir / "model.bin")
    app = create_app(_settings(neutral_threshold=1.01), LocalPredictor(model))
    body = _run(_post(app, {"text": "great"})).json()
    assert body["results"][0]["sentiment"] == "neutral"
    assert body["results"][0]["scores"]["positive"] > 0.5  # the scores stay
    assert body["model"]["neutral_threshold"] == 1.01 and "neutral" in body["model"]["neutral_note"]
    # uncertain_below marks answers without changing them; /limits tells the page.
    unsure = create_app(_settings(uncertain_below=0.9), LocalPredictor(model))

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        async with _client(unsure) as client:
            answer = await client.post("/sentiment", json={"texts": ["great", "it is a phone"]})
            return answer.json(), (await client.get("/limits")).json()

    body, limits = _run(go())
    assert [r["uncertain"] for r in body["results"]] == [False, True]
    assert body["results"][1]["sentiment"] == "positive"
    assert body["model"]["uncertain_below"] == 0.9
    assert limits == {
        "max_texts": 25,
        "max_text_bytes": 5000,
        "max_body_bytes": 754_496,
        "uncertain_below": 0.9,
        "sentiments": ["positive", "negative", "neutral", "mixed"],
    }


def test_api_keys(local_app: Any, tiny_model_dir: Path) -> None:
    app = create_app(
        _settings(api_keys=("k1", "k2")), LocalPredictor(load_model(tiny_model_dir / "model.bin"))
    )
    missing = _run(_post(app, {"text": "ok"}))
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    wrong = _run(_post(app, {"text": "ok"}, headers={"x-api-key": "nope"}))
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    assert _run(_post(app, {"text": "ok"}, headers={"x-api-key": "k2"})).status_code == 200
    assert _run(_post(local_app, {"text": "ok"})).status_code == 200  # no keys configured: open


@pytest.fixture(scope="module")
def cors_app(tiny_model_dir: Path) -> Any:
    """The API with one allowed CORS origin, over the tiny model in-process."""
    return create_app(
        _settings(cors_origins=("https://reviews.example",)),
        LocalPredictor(load_model(tiny_model_dir / "model.bin")),
    )


def _request(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with _client(app) as client:
            return await client.request(method, path, **kwargs)

    return _run(go())


def test_cors_preflight_allows_the_listed_origins_only(cors_app: Any) -> None:
    asked = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
    }
    pre = _request(
        cors_app, "OPTIONS", "/sentiment", headers={"origin": "https://reviews.example", **asked}
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "https://reviews.example"
    other = _request(
        cors_app, "OPTIONS", "/sentiment", headers={"origin": "https://evil.example", **asked}
    )
    assert "access-control-allow-origin" not in other.headers


def test_request_ids_are_echoed_or_made_even_on_errors(cors_app: Any) -> None:
    given = _request(
        cors_app, "POST", "/sentiment", json={"text": "ok"}, headers={"x-request-id": "abc-123"}
    )
    assert given.headers["x-request-id"] == "abc-123"
    made = _request(cors_app, "POST", "/sentiment", json={"text": "ok"})
    assert len(made.headers["x-request-id"]) == 32
    error = _request(cors_app, "POST", "/sentiment", json={})
    assert error.status_code == 400 and error.headers["x-request-id"]


def test_openapi_and_its_docs_are_served_offline(cors_app: Any) -> None:
    spec = _request(cors_app, "GET", "/openapi.json").json()
    assert "/sentiment" in spec["paths"] and "SentimentRequest" in spec["components"]["schemas"]
    docs = _request(cors_app, "GET", "/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert _request(cors_app, "GET", f"/static-offline-docs/{asset}").status_code == 200


def test_the_web_page_is_served_and_links_nowhere_else(cors_app: Any) -> None:
    page = _request(cors_app, "GET", "/")
    assert page.status_code == 200 and "<textarea" in page.text
    assert "http" not in page.text.split("<footer>")[0].lower().replace("http-equiv", "")


def test_endpoint_killed_then_back(tiny_model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    model = str(tiny_model_dir / "model.bin")
    processes = [Process(["serve", "--model", model, "--port", str(port)], tmp_path / "a.log")]
    processes[0].wait_for(f"{url}/ping")
    app = create_app(_settings(), EndpointPredictor(url, timeout=2, retries=1, backoff=0.01))

    async def scenario() -> None:
        async with _client(app) as client:

            async def check(expect: int) -> tuple[dict[str, Any], httpx.Response]:
                response = await client.post("/sentiment", json={"text": "great"})
                assert response.status_code == expect, response.text
                return response.json(), await client.get("/healthz")

            _, health = await check(200)
            assert health.status_code == 200 and health.json()["endpoint"]["ok"] is True
            processes[0].stop()  # the endpoint goes away mid-test
            body, health = await check(503)
            assert "cannot be reached" in body["message"] and "sentiment serve" in body["message"]
            assert health.status_code == 503 and health.json()["endpoint"]["ok"] is False
            assert health.json()["api"] == "ok"
            processes.append(
                Process(["serve", "--model", model, "--port", str(port)], tmp_path / "b.log")
            )
            await asyncio.to_thread(processes[1].wait_for, f"{url}/ping")
            body, _ = await check(200)  # and the API recovers by itself
            assert body["results"][0]["sentiment"] == "positive"

    try:
        _run(scenario())
    finally:
        for process in processes:
            process.stop()


class _Slow:
    """A stand-in for a slow outside SageMaker endpoint (fake: a real one cannot be made slow on demand)."""

    def __init__(self, delay: float, status: int = 200) -> None:
        self.delay = delay
        self.status = status

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await asyncio.sleep(self.delay)
        body = b'[{"label": ["__label__positive"], "prob": [0.9]}]'
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def slow_endpoint() -> Iterator[tuple[str, _Slow]]:
    app = _Slow(delay=3.0)
    with thread_server(app) as url:
        yield url, app


def test_slow_endpoint_is_a_504_not_a_hang(slow_endpoint: tuple[str, _Slow]) -> None:
    url, fake = slow_endpoint

    async def scenario() -> None:
        app = create_app(_settings(), EndpointPredictor(url, timeout=0.5, retries=2, backoff=0.01))
        async with _client(app) as client:
            started = time.monotonic()
            response = await client.post("/sentiment", json={"text": "hello"})
            assert time.monotonic() - started < 2.5
            assert (
                response.status_code == 504
                and "did not answer within 0.5s" in response.json()["message"]
            )
            fake.delay, fake.status = 0.0, 500
            broken = await client.post("/sentiment", json={"text": "hello"})
            assert broken.status_code == 502 and "answered HTTP 500" in broken.json()["message"]
            fake.status = 503
            unready = await client.post("/sentiment", json={"text": "hello"})
            assert unready.status_code == 503 and "not ready" in unready.json()["message"]

    _run(scenario())


def test_lone_surrogates_are_per_item_errors_never_a_500(endpoint_app: Any) -> None:
    async def go() -> list[httpx.Response]:
        async with _client(endpoint_app) as client:
            # Valid JSON (RFC 8259 allows the escape) that no UTF-8 encoder can write back.
            bodies = [b'{"text": "a\\ud800b"}', b'{"texts": ["great", "\\udfff", "bad"]}']
            # A surrogate where the API would echo it (an unknown field's name).
            bodies.append(b'{"\\ud800": 1}')
            headers = {"content-type": "application/json"}
            return [await client.post("/sentiment", content=b, headers=headers) for b in bodies]

    one, batch, field = _run(go())
    assert one.status_code == 200, one.text
    assert one.json()["results"] == []
    (error,) = one.json()["errors"]
    assert error["index"] == 0 and error["code"] == "invalid_text"
    assert "surrogate (U+D800 at character 1)" in error["message"]
    assert batch.status_code == 200, batch.text
    assert [r["index"] for r in batch.json()["results"]] == [0, 2]
    assert [e["code"] for e in batch.json()["errors"]] == ["invalid_text"]
    assert field.status_code == 400 and field.json()["error"] == "bad_request"
    assert field.json()["field"] == "\ud800"


def test_texts_without_a_word_are_per_item_errors(endpoint_app: Any) -> None:
    texts = ["\u200b", "😀", "?", "!!! ...", "&amp;", "\\n", "Great!", "42"]
    body = _run(_post(endpoint_app, {"texts": texts})).json()
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(i, "no_words") for i in range(6)]
    assert "no word" in body["errors"][0]["message"]
    assert [r["index"] for r in body["results"]] == [6, 7]


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    st.text(st.sampled_from("a1_ &;#x4\\nrt<>\u200b😀?é\x00"), max_size=12)
    | st.text(st.characters(exclude_categories=()), max_size=12)
)
def test_the_word_check_agrees_with_normalization(text: str) -> None:
    # The fast check (a search on the raw text) against its definition (the normalized text).
    assert _has_word(text) == bool(re.search(r"[^\W_]", normalize(text)))


def test_security_headers_on_every_answer(local_app: Any) -> None:
    async def go() -> list[httpx.Response]:
        async with _client(local_app) as client:
            return [
                await client.get("/"),
                await client.post("/sentiment", json={"text": "ok"}),
                await client.post("/sentiment", json={}),
                await client.get("/nowhere"),
                await client.get("/docs"),
            ]

    for response in _run(go()):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp
    page, api, _, _, docs = _run(go())
    assert "script-src 'sha256-" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert api.headers["content-security-policy"].startswith("default-src 'none'")
    # The docs' start-up script by its hash too (test_web.py runs them in Chromium).
    scripts = docs.headers["content-security-policy"].split("script-src ")[1].split(";")[0]
    assert scripts.startswith("'self' 'sha256-") and "unsafe" not in scripts
    assert docs.headers["content-length"] == str(len(docs.content))


def test_endpoint_url_is_private_unless_shown(endpoint: str) -> None:
    async def go(app: Any) -> tuple[str, str]:
        async with _client(app) as client:
            answer = await client.post("/sentiment", json={"text": "good"})
            health = await client.get("/healthz")
            return answer.text, health.text

    hidden = create_app(_settings(), EndpointPredictor(endpoint))
    answer, health = _run(go(hidden))
    assert endpoint not in answer and endpoint not in health
    shown = create_app(_settings(api_show_endpoint=True), EndpointPredictor(endpoint))
    answer, health = _run(go(shown))
    assert endpoint in answer and endpoint in health
    # Nor in the error answered when the endpoint is down (the API's log says where).
    down = f"http://127.0.0.1:{free_port()}"
    gone = create_app(_settings(), EndpointPredictor(down, retries=0))
    answer, _ = _run(go(gone))
    assert "cannot be reached" in answer and down not in answer
