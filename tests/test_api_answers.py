"""The four answers (positive, negative, neutral, mixed) through the API: from our endpoint with
a calibrated three-class model, and from a stock SageMaker-style endpoint that answers only
label/prob, in one /invocations call per request."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from conftest import read_reviews, start_endpoint, thread_server
from sentiment import answers, layout
from sentiment.api.app import create_app
from sentiment.api.predictors import EndpointPredictor, LocalPredictor
from sentiment.calibration import Calibration
from sentiment.config import Settings
from sentiment.model import Model, load_model
from test_answers import MIXED_TEXT, ternary_model_dir  # noqa: F401 - a fixture, reused

TEXTS = [
    MIXED_TEXT,
    "Great product, works perfectly. Love it!",
    "Terrible. Broke after a day. Waste of money.",
    "",
]


def _post(app: Any, body: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            response = await client.post("/sentiment", json=body)
            assert response.status_code == 200, response.text
            return dict(response.json())

    return asyncio.run(go())


def _check_four(result: dict[str, Any]) -> None:
    assert list(result["scores"]) == ["positive", "negative", "neutral", "mixed"]
    assert sum(result["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    # the weighted answer (`answers.decide`) of the model's labels, and its score
    four = np.array([list(result["scores"].values())])
    weights = answers.weights_for(list(result["label_scores"]))
    assert result["sentiment"] == answers.SENTIMENTS[answers.decide(four, weights)[0]]
    assert result["confidence"] == result["scores"][result["sentiment"]]


@pytest.fixture(scope="module")
def calibrated_ternary(ternary_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    folder = tmp_path_factory.mktemp("calibrated-ternary")
    shutil.copy(ternary_model_dir / layout.MODEL_BIN, folder / layout.MODEL_BIN)
    calibration = Calibration(
        "temperature", 1.5, (0.0, 0.0, 0.0), ("negative", "neutral", "positive")
    )
    (folder / layout.CALIBRATION).write_text(json.dumps(calibration.to_dict()))
    return folder


def test_a_calibrated_three_class_model_behind_our_endpoint(
    calibrated_ternary: Path, tmp_path: Path
) -> None:
    process, url = start_endpoint(calibrated_ternary, tmp_path / "serve.log")
    try:
        app = create_app(Settings(), EndpointPredictor(url, timeout=5))
        body = _post(app, {"texts": TEXTS})
    finally:
        process.stop()
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [e["code"] for e in body["errors"]] == ["empty_text"]
    for result in results:
        _check_four(result)
        assert set(result["label_scores"]) == {"negative", "neutral", "positive"}
    assert [r["sentiment"] for r in results[1:]] == ["positive", "negative"]
    # The same answers as the model gives in-process with its calibration.
    model = load_model(calibrated_ternary)
    for result, answer in zip(results, model.answers(TEXTS[:3]), strict=True):
        assert result["sentiment"] == answer.sentiment
        assert result["scores"] == pytest.approx(answer.scores, abs=1e-5)
    info = body["model"]
    assert info["labels"] == ["negative", "neutral", "positive"]
    assert info["calibrated"] is True
    assert info["derivation"].startswith("three-class model")
    assert "calibrated (temperature scaling)" in info["derivation"]


class _StockEndpoint:
    """A stand-in for SageMaker's BlazingText container (an outside service: its image cannot
    run here) over a real model: /ping and /invocations answering raw label/prob only, top k
    as asked, and nothing at GET /. It records every /invocations body."""

    def __init__(self, model: Model, *, raw_scores: bool = True) -> None:
        self.model = model
        self.raw_scores = raw_scores  # False: the model's calibration, as ours serves it
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, payload = 404, b'{"message": "not found"}'
        if scope["path"] == "/ping":
            status, payload = 200, b""
        elif scope["path"] == "/invocations":
            request = orjson.loads(body)
            self.calls.append(request)
            k = request.get("configuration", {}).get("k", 1)
            predictions = self.model.predict(request["instances"], k=k, raw_scores=self.raw_scores)
            status, payload = 200, orjson.dumps([p.to_sagemaker() for p in predictions])
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": payload})


@pytest.fixture
def stock_endpoint(tiny_model_dir: Path) -> Iterator[tuple[str, _StockEndpoint]]:
    yield from _serve_stock(_StockEndpoint(load_model(tiny_model_dir / "model.bin")))


def _serve_stock(app: _StockEndpoint) -> Iterator[tuple[str, _StockEndpoint]]:
    with thread_server(app) as url:
        yield url, app


def test_a_stock_sagemaker_endpoint_in_one_call(
    stock_endpoint: tuple[str, _StockEndpoint],
) -> None:
    url, stock = stock_endpoint
    app = create_app(Settings(), EndpointPredictor(url, timeout=5))
    body = _post(app, {"texts": TEXTS})
    # One /invocations call: the three texts, then the sentences of those with several.
    (call,) = stock.calls
    assert call["instances"][:3] == TEXTS[:3]
    assert call["instances"][3:5] == ["The screen is gorgeous.", "The battery died after two days."]
    assert len(call["instances"]) == 3 + 2 + 2 + 3
    assert call["configuration"]["k"] >= 2  # every label's probability
    results = body["results"]
    for result in results:
        _check_four(result)
    assert [r["sentiment"] for r in results[1:]] == ["positive", "negative"]
    # What the model gives in-process from its raw scores, which is all a stock endpoint has.
    for result, answer in zip(
        results, stock.model.answers(TEXTS[:3], raw_scores=True), strict=True
    ):
        assert result["sentiment"] == answer.sentiment
        assert result["scores"] == pytest.approx(answer.scores, abs=1e-5)
    assert body["model"]["calibrated"] is None
    assert "unknown" in body["model"]["derivation"]


def test_calibrated_follows_a_model_swap_on_the_endpoint(
    tiny_model_dir: Path, calibrated_ternary: Path, tmp_path: Path
) -> None:
    token = "swap-token"
    process, url = start_endpoint(
        tiny_model_dir / "model.bin", tmp_path / "serve.log", env={"SENTIMENT_ADMIN_TOKEN": token}
    )
    app = create_app(Settings(), EndpointPredictor(url, timeout=5, describe_ttl=0.0))

    async def scenario() -> list[dict[str, Any]]:
        transport = httpx.ASGITransport(app=app)
        seen = []
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:

            async def ask() -> dict[str, Any]:
                answer = await client.post("/sentiment", json={"text": MIXED_TEXT})
                return dict(answer.json()["model"])

            seen.append(await ask())
            async with httpx.AsyncClient() as admin:
                swapped = await admin.post(
                    f"{url}/admin/model",
                    json={"model": str(calibrated_ternary)},
                    headers={"authorization": f"Bearer {token}"},
                    timeout=60,
                )
                assert swapped.status_code == 200, swapped.text
            seen.append(await ask())  # starts the refresh in the background
            await asyncio.sleep(0.3)
            seen.append(await ask())
        return seen

    try:
        before, _, after = asyncio.run(scenario())
    finally:
        process.stop()
    assert before["calibrated"] is False and before["labels"] == ["negative", "positive"]
    assert after["calibrated"] is True and after["labels"] == ["negative", "neutral", "positive"]
    assert after["derivation"].startswith("three-class model")


@pytest.fixture(scope="module")
def reviews(shared_data: Path) -> list[str]:
    """Raw reviews (title and body on lines of their own), most with several sentences."""
    rows = read_reviews(shared_data / "amazon_review_full" / "test.csv", limit=70)
    return TEXTS[:3] + [f"{title}\n{body}" for _label, title, body in rows]


def test_our_endpoint_computes_the_four_answers_on_request(
    calibrated_ternary: Path, reviews: list[str], tmp_path: Path
) -> None:
    """`"configuration": {"answers": true}`: each prediction also holds the answer and the four
    scores Model.answers gives in-process; label/prob stay as without it. 73 texts: the
    batch is predicted in a worker thread, a chunk at a time (raw_scores kept)."""
    model = load_model(calibrated_ternary)
    process, url = start_endpoint(calibrated_ternary, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert "answers" in client.get("/").json()["configuration"]

            def invoke(configuration: dict[str, Any]) -> httpx.Response:
                body = {"instances": reviews, "configuration": configuration}
                return client.post("/invocations", json=body)

            plain = invoke({"k": 3}).json()
            answered = invoke({"k": 3, "answers": True}).json()
            raw = invoke({"k": 3, "answers": True, "raw_scores": True}).json()
            refused = invoke({"answers": "yes"})
    finally:
        process.stop()
    for got, expected in (
        (answered, model.answers(reviews)),
        (raw, model.answers(reviews, raw_scores=True)),
    ):
        assert len(got) == len(expected)
        for item, answer in zip(got, expected, strict=True):
            assert item["sentiment"] == answer.sentiment
            assert item["scores"] == pytest.approx(answer.scores, abs=1e-12, rel=0)
    assert [{"label": a["label"], "prob": a["prob"]} for a in answered] == plain
    assert raw[0]["prob"] != answered[0]["prob"]  # the model's own probabilities
    assert {a["sentiment"] for a in answered} >= {"positive", "negative"}
    assert refused.status_code == 400
    assert refused.json()["field"] == "configuration.answers"


def _results_of(app: Any, texts: list[str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = _post(app, {"texts": texts})["results"]
    return results


def test_the_api_gives_the_same_answers_whichever_computes_them(
    calibrated_ternary: Path, reviews: list[str], tmp_path: Path
) -> None:
    """Our endpoint computes the answers (the API sends it the texts alone); a stock endpoint
    serving the same calibrated model gets the texts and their sentences; a model in-process:
    the same results (25 reviews: the API's limit per request)."""
    reviews = reviews[:25]
    model = load_model(calibrated_ternary)
    in_process = _results_of(create_app(Settings(), LocalPredictor(model)), reviews)
    stock_server = _serve_stock(_StockEndpoint(model, raw_scores=False))
    stock_url, stock = next(stock_server)
    try:
        from_stock = _results_of(create_app(Settings(), EndpointPredictor(stock_url)), reviews)
    finally:
        next(stock_server, None)
    (call,) = stock.calls
    assert len(call["instances"]) > 2 * len(reviews)  # the sentences too
    process, url = start_endpoint(calibrated_ternary, tmp_path / "serve.log")
    try:
        from_ours = _results_of(create_app(Settings(), EndpointPredictor(url)), reviews)
        metrics = httpx.get(f"{url}/metrics", timeout=10).text
    finally:
        process.stop()
    # Its /invocations calls held the texts alone.
    sums = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("sentiment_instances_per_request_sum")
    ]
    assert sum(sums) == len(reviews)
    assert len(from_ours) == len(reviews)
    assert from_ours == from_stock == in_process
