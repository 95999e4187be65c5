"""The public sentiment API and its web page.

`POST /sentiment` takes `{"text": "..."}` or `{"texts": ["...", ...]}` and answers

    {"results": [{"index": 0, "text": "...", "sentiment": "positive", "confidence": 0.97,
                  "scores": {"positive": 0.97, "negative": 0.03}}],
     "errors":  [{"index": 1, "code": "empty_text", "message": "..."}],
     "model":   {"labels": [...], "neutral_threshold": null, "source": "endpoint", ...}}

The shape follows the services people already use. From AWS Comprehend's BatchDetectSentiment:
results and per-item errors side by side (`ResultList` / `ErrorList`), each carrying the
`index` of its input, so one bad text does not fail the batch; a full score map for every item
(`SentimentScore`), with every label the model knows; the limits (25 texts, 5,000 UTF-8 bytes
per text). From Azure's Text Analytics: `confidence` beside the scores. Unlike both, we echo
the `text` (what the seed exercise asked for: the text and its sentiment) and name labels in
lower case as the model does. A confidence threshold can turn low-confidence answers into
`neutral` (the model's own scores stay in `scores`; `model.neutral_threshold` says it is on).

Errors a client causes are 4xx with `{"error": code, "message": ...}`; the endpoint's trouble
is 502/503/504 with a message; never a 500 for bad input.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from sentiment import __version__
from sentiment.api.predictors import Predictor
from sentiment.config import Settings
from sentiment.errors import Forbidden, SentimentError, Unauthorized, UsageError

log = logging.getLogger("sentiment.api")
access = logging.getLogger("sentiment.api.access")
NEUTRAL = "neutral"


class SentimentRequest(BaseModel):
    """One text or a batch (not both)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"texts": ["I love it!", "Broke after a day :("]}]},
    )
    text: str | None = Field(default=None, description="A single text.")
    texts: list[str] | None = Field(default=None, description="Up to 25 texts (configurable).")


class Result(BaseModel):
    index: int
    text: str
    sentiment: str
    confidence: float
    scores: dict[str, float]


class ItemError(BaseModel):
    index: int
    code: str
    message: str


class SentimentResponse(BaseModel):
    results: list[Result]
    errors: list[ItemError]
    model: dict[str, Any]


def create_app(settings: Settings, predictor: Predictor) -> FastAPI:
    """The API app around a predictor (endpoint client or in-process model)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await predictor.close()

    app = FastAPIOffline(
        title="sentiment",
        version=__version__,
        description="Sentiment of reviews: POST /sentiment. The web page is at /.",
        lifespan=lifespan,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["content-type", "x-api-key", "x-request-id"],
            expose_headers=["x-request-id"],
        )
    _install_errors(app)
    _install_request_ids(app)

    @app.post(
        "/sentiment",
        response_model=SentimentResponse,
        responses={
            400: {"description": "Malformed request"},
            401: {},
            403: {},
            502: {},
            503: {},
            504: {},
        },
    )
    async def sentiment(body: SentimentRequest, request: Request) -> dict[str, Any]:
        """The sentiment of each text, with a confidence and the score of every label."""
        _check_key(settings, request)
        texts = _texts(body, settings)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        todo: list[tuple[int, str]] = []
        for i, text in enumerate(texts):
            problem = _problem(text, settings)
            if problem:
                errors.append({"index": i, "code": problem[0], "message": problem[1]})
            else:
                todo.append((i, text))
        scores = await predictor.scores([t for _, t in todo])
        threshold = settings.neutral_threshold
        for (i, text), s in zip(todo, scores, strict=True):
            top, confidence = next(iter(s.probs.items()))
            label = NEUTRAL if threshold and confidence < threshold else top
            results.append(
                {
                    "index": i,
                    "text": text,
                    "sentiment": label,
                    "confidence": round(confidence, 6),
                    "scores": {k: round(v, 6) for k, v in s.probs.items()},
                }
            )
        labels = sorted({k for r in results for k in r["scores"]}) or await predictor.labels()
        return {
            "results": results,
            "errors": errors,
            "model": _model_info(settings, predictor, labels),
        }

    @app.get("/healthz")
    async def healthz() -> Response:
        """The API is up; `endpoint.ok` says whether the model endpoint answers."""
        endpoint = await predictor.health()
        status = 200 if endpoint["ok"] else 503
        return JSONResponse(
            {"status": "ok" if endpoint["ok"] else "degraded", "api": "ok", "endpoint": endpoint},
            status_code=status,
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = (
            resources.files("sentiment.api")
            .joinpath("static/index.html")
            .read_text(encoding="utf-8")
        )
        return HTMLResponse(html)

    return app


def _texts(body: SentimentRequest, settings: Settings) -> list[str]:
    if body.text is not None and body.texts is not None:
        raise UsageError('Give "text" or "texts", not both.', field="texts")
    if body.text is None and body.texts is None:
        raise UsageError(
            'Field "text" (a string) or "texts" (a list of strings) is required.', field="text"
        )
    texts = [body.text] if body.text is not None else list(body.texts or [])
    if not texts:
        raise UsageError('Field "texts" is empty; give at least one text.', field="texts")
    if len(texts) > settings.api_max_texts:
        raise UsageError(
            f"Too many texts: {len(texts)}; at most {settings.api_max_texts} per request.",
            hint="Split the batch into several requests.",
            field="texts",
        )
    return texts


def _problem(text: str, settings: Settings) -> tuple[str, str] | None:
    if not text.strip():
        return "empty_text", "The text is empty."
    size = len(text.encode("utf-8"))
    if size > settings.api_max_text_bytes:
        return (
            "text_too_large",
            f"The text has {size:,} UTF-8 bytes; the limit is {settings.api_max_text_bytes:,}.",
        )
    return None


def _model_info(settings: Settings, predictor: Predictor, labels: list[str]) -> dict[str, Any]:
    threshold = settings.neutral_threshold or None
    return predictor.describe() | {
        "labels": labels,
        "neutral_threshold": threshold,
        "neutral_note": f"confidence below {threshold} is answered as 'neutral'"
        if threshold
        else None,
    }


def _check_key(settings: Settings, request: Request) -> None:
    if not settings.api_keys:
        return
    key = request.headers.get("x-api-key")
    if not key:
        raise Unauthorized("Missing API key.", hint="Send it in the x-api-key header.")
    if key not in settings.api_keys:
        raise Forbidden("The API key is not valid.")


def _install_errors(app: FastAPI) -> None:
    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SentimentError)
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        field = ""
        for part in first.get("loc", ())[1:]:
            field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
        if first.get("type") == "json_invalid" or not field:
            field = "body"
        message = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            text = "The body is not valid JSON."
        elif first.get("type") == "extra_forbidden":
            text = f'Unknown field "{field}"; send "text" or "texts".'
        else:
            text = f"Field {field!r}: {message}."
        return JSONResponse(
            {"error": "bad_request", "message": text, "field": field}, status_code=400
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse(
            {"error": "http_error", "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    app.add_exception_handler(SentimentError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)


def _install_request_ids(app: FastAPI) -> None:
    app.add_middleware(RequestIds)


class RequestIds:
    """Pure ASGI middleware: an `x-request-id` on every response (the caller's, or a new one)
    and an access log line. (Starlette's BaseHTTPMiddleware would add a task per request.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
        rid = (
            given
            if 0 < len(given) <= 128 and given.isascii() and given.decode().isprintable()
            else uuid.uuid4().hex.encode()
        )
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if access.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access.info(
                    '%s "%s %s" %d %.1fms rid=%s',
                    client[0] if client else "-",
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - started) * 1000,
                    rid.decode(),
                )
