"""The public sentiment API and its web page.

`POST /sentiment` takes `{"text": "..."}` or `{"texts": ["...", ...]}` and answers

    {"results": [{"index": 0, "text": "...", "sentiment": "positive", "confidence": 0.93,
                  "uncertain": false,
                  "scores": {"positive": 0.93, "negative": 0.01, "neutral": 0.06, "mixed": 0.0},
                  "label_scores": {"positive": 0.97, "negative": 0.03}}],
     "errors":  [{"index": 1, "code": "empty_text", "message": "..."}],
     "model":   {"labels": [...], "calibrated": true, "derivation": "...", ...}}

Every text gets one of four answers, positive, negative, neutral or mixed, with all four scores
(summing to 1), computed by `sentiment.answers` from the probabilities of every label the model
knows for the whole text and for each of its sentences: the API asks the endpoint for all of
them in one `/invocations` call, so any endpoint that speaks SageMaker's protocol will do, ours
or a stock BlazingText one. `label_scores` keeps the model's own probabilities of the whole
text; `model.derivation` says how the four answers came from them, `model.calibrated` whether
the scores are calibrated (null when the endpoint does not say).

The shape follows the services people already use. From AWS Comprehend's BatchDetectSentiment:
results and per-item errors side by side (`ResultList` / `ErrorList`), each carrying the
`index` of its input, so one bad text does not fail the batch; the four sentiments (POSITIVE,
NEGATIVE, NEUTRAL, MIXED) with a full score map (`SentimentScore`); the limits (25 texts,
5,000 UTF-8 bytes per text). From Azure's Text Analytics: `confidence` beside the scores. Unlike
both, we echo the `text` (what the seed exercise asked for) and mark an answer `uncertain` when
its score is below `uncertain_below` (a setting; `GET /limits` tells it, with the limits,
to the web page). An older setting, `neutral_threshold`, still turns answers below it into
`neutral` (the scores stay).

Errors a client causes are 4xx with `{"error": code, "message": ...}`; the endpoint's trouble
is 502/503/504 with a message; never a 500 for bad input.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentiment import __version__
from sentiment import answers as answering
from sentiment.api import predictors
from sentiment.api.predictors import Answered, Calibrated, Predictor
from sentiment.config import Settings
from sentiment.errors import (
    Forbidden,
    ModelError,
    PayloadTooLarge,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamError,
    UsageError,
)
from sentiment.http_common import StatusSend, error_handlers
from sentiment.labels import LabelMap
from sentiment.serve.codecs import read_body
from sentiment.text import normalize

log = logging.getLogger("sentiment.api")
access = logging.getLogger("sentiment.api.access")
NEUTRAL = "neutral"
# A word: a letter or a digit of any script (what `\w` matches, less the underscore).
_WORD = re.compile(r"[^\W_]")


class JSONAnswer(JSONResponse):
    """JSON written by orjson; a string it cannot write (a lone surrogate a client sent, echoed
    in a message) is escaped by the standard library instead of failing the answer."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except TypeError:  # orjson.JSONEncodeError: "surrogates not allowed"
            return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode()


def request_schema(settings: Settings) -> dict[str, Any]:
    """The JSON schema of a POST /sentiment body: exactly one of `text` and `texts`; what
    `_texts` accepts, no more, no less (tests/test_api_fuzz.py checks the two agree)."""
    text = {
        "type": "string",
        "description": f"A text. One over {settings.api_max_text_bytes:,} UTF-8 bytes, empty, "
        "or holding no word gets a per-item error.",
    }
    return {
        "title": "SentimentRequest",
        "description": 'One text (`{"text": "..."}`) or a batch (`{"texts": [...]}`), not both. '
        f"A body over {settings.api_max_body_bytes:,} bytes is refused (413).",
        "oneOf": [
            {
                "type": "object",
                "title": "OneText",
                "properties": {"text": text},
                "required": ["text"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "title": "ManyTexts",
                "properties": {
                    "texts": {
                        "type": "array",
                        "items": text,
                        "minItems": 1,
                        "maxItems": settings.api_max_texts,
                    }
                },
                "required": ["texts"],
                "additionalProperties": False,
            },
        ],
        "examples": [{"texts": ["I love it!", "Broke after a day :("]}],
    }


class FourScores(BaseModel):
    """The four answers' scores; they sum to 1."""

    positive: float
    negative: float
    neutral: float
    mixed: float


class Result(BaseModel):
    index: int
    text: str
    sentiment: Literal["positive", "negative", "neutral", "mixed"]
    confidence: float = Field(description="The answer's score (of the four).")
    uncertain: bool = Field(description="The answer's score is below `model.uncertain_below`.")
    scores: FourScores
    label_scores: dict[str, float] = Field(
        description="The model's own probability of each of its labels for the whole text."
    )


class ItemError(BaseModel):
    index: int
    code: str
    message: str


class SentimentResponse(BaseModel):
    results: list[Result]
    errors: list[ItemError]
    model: dict[str, Any]


class Limits(BaseModel):
    """What one POST /sentiment may carry, and when an answer is called uncertain."""

    max_texts: int
    max_text_bytes: int
    max_body_bytes: int
    uncertain_below: float
    sentiments: list[str]


class EndpointHealth(BaseModel):
    model_config = ConfigDict(extra="allow")
    ok: bool
    latency_ms: float
    detail: str | None


class Health(BaseModel):
    status: str
    api: str
    endpoint: EndpointHealth


class ErrorAnswer(BaseModel):
    """What every 4xx/5xx answers; `field` names the part of the request at fault."""

    model_config = ConfigDict(extra="allow")
    error: str
    message: str
    field: str | None = None


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
        default_response_class=JSONAnswer,
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
    page_html = resources.files("sentiment.api").joinpath("static/index.html").read_text("utf-8")
    app.add_middleware(SecurityHeaders, page_policy=_page_policy(page_html))
    _install_request_ids(app)
    keys = _KeyDigests(settings.api_keys)
    label_map = settings.label_map  # parsed once, with the settings
    limits_body = {
        "max_texts": settings.api_max_texts,
        "max_text_bytes": settings.api_max_text_bytes,
        "max_body_bytes": settings.api_max_body_bytes,
        "uncertain_below": settings.uncertain_below,
        "sentiments": list(answering.SENTIMENTS),
    }
    error = {"model": ErrorAnswer}

    @app.post(
        "/sentiment",
        response_model=SentimentResponse,
        responses={
            400: error | {"description": "Malformed request (the field at fault in `field`)"},
            401: error | {"description": "API key missing"},
            403: error | {"description": "API key not valid"},
            413: error | {"description": f"Body over {settings.api_max_body_bytes:,} bytes"},
            415: error | {"description": "Content-Type is not application/json"},
            502: error | {"description": "The model endpoint answered an error"},
            503: error | {"description": "The model endpoint cannot be reached"},
            504: error | {"description": "The model endpoint is too slow"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/SentimentRequest"}
                    }
                },
            },
        }
        | ({"security": [{"apiKey": []}]} if settings.api_keys else {}),
    )
    async def sentiment(request: Request) -> Response:
        """The sentiment of each text (positive, negative, neutral or mixed) with all four
        scores, or a per-item error."""
        # The body is read only once the key is known good, and never past the limits: a
        # client without a key, or with an oversized body, costs neither memory nor parsing.
        keys.check(request.headers.get("x-api-key"))
        texts = _texts(await _json_body(request, settings), settings)
        errors: list[dict[str, Any]] = []
        todo: list[int] = []
        for i, problem in enumerate(_problems(texts, settings)):
            if problem:
                errors.append({"index": i, "code": problem[0], "message": problem[1]})
            else:
                todo.append(i)
        # The four answers: by our endpoint (or model) itself, or combined here from one call
        # for the texts and their sentences (`predictors.answer`).
        calibrated = await predictor.calibrated()  # the endpoint described (once for all)
        reading_map = _reading_map(label_map, predictor)
        try:
            found = await predictors.answer(predictor, [texts[i] for i in todo], reading_map)
        except ModelError as err:  # labels with no polarity: the endpoint's model, not the client
            raise UpstreamError(
                f"The model cannot answer sentiments: {err.message}", hint=err.hint
            ) from None
        results = _results(texts, todo, found, settings, reading_map)
        labels = list(found.classes) or await predictor.labels()
        return JSONAnswer(
            {
                "results": results,
                "errors": errors,
                "model": _model_info(settings, predictor, labels, calibrated, reading_map),
            }
        )

    @app.get("/limits", response_model=Limits)
    async def limits() -> Response:
        """The limits of POST /sentiment and the uncertainty threshold (the web page reads
        them here)."""
        return JSONAnswer(limits_body)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "The model endpoint does not answer"}},
    )
    async def healthz() -> Response:
        """The API is up; `endpoint.ok` says whether the model endpoint answers."""
        endpoint = await predictor.health()
        if not settings.api_show_endpoint:
            endpoint.pop("url", None)
        status = 200 if endpoint["ok"] else 503
        return JSONAnswer(
            {"status": "ok" if endpoint["ok"] else "degraded", "api": "ok", "endpoint": endpoint},
            status_code=status,
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)  # no icon; browsers ask for one on every page

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        spec = generate()
        components = spec.setdefault("components", {})
        components.setdefault("schemas", {})["SentimentRequest"] = request_schema(settings)
        if settings.api_keys:
            components["securitySchemes"] = {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}
            }
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _json_body(request: Request, settings: Settings) -> Any:
    """The body parsed as JSON: refused with 415 unless it is JSON, with 413 as soon as it is
    known to exceed the limits (read as it streams in, never buffered past them)."""
    kind = request.headers.get("content-type")
    if kind is not None:
        media = kind.split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type {kind[:100]!r} is not supported.",
                hint='Send application/json: {"text": "..."} or {"texts": ["...", ...]}.',
            )
    limit = settings.api_max_body_bytes
    declared = request.headers.get("content-length")
    try:
        body = await read_body(request.receive, declared.encode() if declared else None, limit)
    except PayloadTooLarge:
        raise PayloadTooLarge(
            f"The body exceeds {limit:,} bytes, more than {settings.api_max_texts} texts of "
            f"{settings.api_max_text_bytes:,} UTF-8 bytes need.",
            hint="Split the batch into several requests.",
        ) from None
    try:
        # The standard library's parser, not orjson: it reads a lone surrogate escape
        # ("\ud800", valid JSON) so that the text gets a per-item error, not the whole body.
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, too deep a nesting
        raise UsageError("The body is not valid JSON.", field="body") from None


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "a number")


def _texts(data: Any, settings: Settings) -> list[str]:
    """The texts of a parsed body; exactly what `request_schema` allows."""
    if type(data) is not dict:
        raise UsageError(
            'The body must be a JSON object: {"text": "..."} or {"texts": ["...", ...]}.',
            field="body",
        )
    for name in data:
        if name not in ("text", "texts"):
            shown = name if len(name) <= 40 else name[:40] + "…"
            raise UsageError(f'Unknown field "{shown}"; send "text" or "texts".', field=shown)
    if "text" in data and "texts" in data:
        raise UsageError('Give "text" or "texts", not both.', field="texts")
    if "text" in data:
        if type(data["text"]) is not str:
            raise UsageError(
                f'Field "text" must be a string, got {_json_type(data["text"])}.', field="text"
            )
        return [data["text"]]
    if "texts" not in data:
        raise UsageError(
            'Field "text" (a string) or "texts" (a list of strings) is required.', field="text"
        )
    texts = data["texts"]
    if type(texts) is not list:
        raise UsageError(
            f'Field "texts" must be a list of strings, got {_json_type(texts)}.', field="texts"
        )
    if not texts:
        raise UsageError('Field "texts" is empty; give at least one text.', field="texts")
    if len(texts) > settings.api_max_texts:
        raise UsageError(
            f"Too many texts: {len(texts)}; at most {settings.api_max_texts} per request.",
            hint="Split the batch into several requests.",
            field="texts",
        )
    for i, text in enumerate(texts):
        if type(text) is not str:
            raise UsageError(
                f"texts[{i}] must be a string, got {_json_type(text)}.", field=f"texts[{i}]"
            )
    return texts


def _problems(texts: list[str], settings: Settings) -> list[tuple[str, str] | None]:
    """Why each text cannot be analyzed (a per-item error), or None."""
    return [_problem(text, settings) for text in texts]


def _has_word(text: str) -> bool:
    """Whether the text, normalized as the model reads it, holds a word (a letter or digit).

    Normalizing only keeps or maps letters and digits (numbers and URLs become `_num_` and
    `_url_`), except in HTML entities (`&amp;`) and literal `\\n`, which it removes; so only a
    text holding `&` or a backslash is normalized here (25 reviews, on the project's busy
    machine: 330 us all normalized, 20 us this way).
    """
    if not _WORD.search(text):
        return False
    if "&" in text or "\\" in text:
        return _WORD.search(normalize(text)) is not None
    return True


def _problem(text: str, settings: Settings) -> tuple[str, str] | None:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as err:
        return (
            "invalid_text",
            f"The text holds a lone UTF-16 surrogate (U+{ord(text[err.start]):04X} at "
            f"character {err.start}), which is not a character; send valid Unicode.",
        )
    if not text.strip():
        return "empty_text", "The text is empty."
    if size > settings.api_max_text_bytes:
        return (
            "text_too_large",
            f"The text has {size:,} UTF-8 bytes; the limit is {settings.api_max_text_bytes:,}.",
        )
    # A text holding no word ("\u200b", "😀", "?!") carries no sentiment the model can read,
    # yet it answered such texts with a confident label (issue 14).
    if not _has_word(text):
        return (
            "no_words",
            "The text holds no word (no letter or digit), so it has no sentiment to read.",
        )
    return None


def _reading_map(label_map: LabelMap, predictor: Predictor) -> LabelMap:
    """The label map the API reads the endpoint's labels through: its own setting, else the
    one our endpoint says its model is served with (`GET /`), so an endpoint started with
    `--label-map` needs it once, not again on every API in front of it."""
    if label_map.pairs:
        return label_map
    described = getattr(predictor, "label_map", None)
    return described() if described is not None else label_map


def _results(
    texts: list[str],
    todo: list[int],
    found: Answered,
    settings: Settings,
    label_map: LabelMap,
) -> list[dict[str, Any]]:
    """One result per analyzed text: its answer, the four scores and the model's own."""
    if not todo:
        return []
    four = found.scores
    results = []
    neutral_below = settings.neutral_threshold
    classes = found.classes
    # The answer as `sentiment evaluate` measures it: the weighted side (`answers.decide`), as
    # our endpoint sent it, or decided here.
    decided = found.decided
    if decided is None:
        decided = answering.decided(four, predictors.reading(label_map, classes).weights)
    for i, row, own, answer in zip(
        todo, four.round(6).tolist(), found.rows.round(6).tolist(), decided, strict=True
    ):
        best = row[answer]
        sentiment = answering.SENTIMENTS[answer]
        if neutral_below and best < neutral_below:
            sentiment = NEUTRAL
        results.append(
            {
                "index": i,
                "text": texts[i],
                "sentiment": sentiment,
                "confidence": best,
                "uncertain": best < settings.uncertain_below,
                "scores": dict(zip(answering.SENTIMENTS, row, strict=True)),
                "label_scores": dict(sorted(zip(classes, own, strict=True), key=_second_desc)),
            }
        )
    return results


def _second_desc(pair: tuple[str, float]) -> float:
    return -pair[1]


def _model_info(
    settings: Settings,
    predictor: Predictor,
    labels: list[str],
    calibrated: Calibrated,
    label_map: LabelMap,
) -> dict[str, Any]:
    threshold = settings.neutral_threshold or None
    described = predictor.describe()
    if not settings.api_show_endpoint:
        described.pop("endpoint", None)
    return described | {
        "labels": sorted(labels),
        "sentiments": list(answering.SENTIMENTS),
        "calibrated": calibrated.known,
        "derivation": _derivation(tuple(sorted(labels)), calibrated, label_map),
        "uncertain_below": settings.uncertain_below,
        "neutral_threshold": threshold,
        "neutral_note": f"a top score below {threshold} is answered as 'neutral'"
        if threshold
        else None,
    }


@functools.lru_cache(maxsize=64)
def _derivation(labels: tuple[str, ...], calibrated: Calibrated, label_map: LabelMap) -> str | None:
    """How the four answers come from these labels (cached: the same on every request)."""
    names, note = label_map.names(labels)
    try:
        how = answering.derivation(names, labels)
    except ModelError:
        return None
    if note:
        how = f"{how}; {note}"
    if calibrated.known is None:
        return f"{how}; whether the scores are calibrated is unknown (the endpoint does not say)"
    if calibrated.known:
        return f"{how}; scores calibrated ({calibrated.method} scaling)"
    return f"{how}; uncalibrated scores"


class _KeyDigests:
    """The accepted API keys, compared in constant time: the SHA-256 of the key given against
    that of every accepted key, all of them each time (no early exit, no length leak)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def check(self, given: str | None) -> None:
        if not self.digests:
            return
        if not given:
            raise Unauthorized("Missing API key.", hint="Send it in the x-api-key header.")
        digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
        valid = False
        for accepted in self.digests:
            valid |= hmac.compare_digest(digest, accepted)
        if not valid:
            raise Forbidden("The API key is not valid.")


def _install_errors(app: FastAPI) -> None:
    async def on_validation(request: Request, exc: Exception) -> Response:
        # Only the routes other than /sentiment (which validates its body itself) get here.
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        return JSONAnswer(
            {"error": "bad_request", "message": f"{first.get('msg', 'Invalid request')}."},
            status_code=400,
        )

    app.add_exception_handler(RequestValidationError, on_validation)
    for kind, handler in error_handlers(log, JSONAnswer).items():
        app.add_exception_handler(kind, handler)


def _hashes(html: str, tag: str) -> str:
    """CSP sources for the inline `<tag>` blocks (no attributes) of a page, by SHA-256."""
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block.encode()).digest()).decode()}'"
        for block in re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
    )


def _page_policy(html: str) -> bytes:
    """The web page's Content-Security-Policy: its own inline script and style (by hash) and
    calls to this origin; nothing else runs, loads or frames it."""
    return (
        f"default-src 'none'; script-src {_hashes(html, 'script')}; "
        f"style-src {_hashes(html, 'style')}; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ).encode()


def _docs_policy(html: str) -> bytes:
    """The interactive docs' (Swagger UI, ReDoc): their scripts from this origin and their
    inline start-up script by hash; ReDoc injects <style> elements, so inline styles pass."""
    return (
        f"default-src 'self'; script-src 'self' {_hashes(html, 'script')}; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ).encode()


# Everything else is data: nothing in it may run or load.
_DATA_POLICY = b"default-src 'none'; frame-ancestors 'none'"
# Pages whose inline script names the request's root path: their policy is made per answer.
_DOCS = frozenset({"/docs", "/redoc"})


class SecurityHeaders:
    """Pure ASGI middleware: the headers that keep browsers from sniffing, framing, leaking
    the referrer or running anything the page does not hold, on every answer."""

    def __init__(self, app: ASGIApp, page_policy: bytes) -> None:
        self.app = app
        self.page_policy = page_policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in _DOCS:
            await self._docs(scope, receive, send)
            return
        policy = self.page_policy if path == "/" else _DATA_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with_headers(message, policy)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A docs page held whole (a few kB) until its policy is known, then sent."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                body = b"".join(m.get("body", b"") for m in held[1:])
                start = held[0]
                start["headers"] = _with_headers(start, _docs_policy(body.decode("utf-8")))
                start["headers"] = [
                    (k, v) for k, v in start["headers"] if k.lower() != b"content-length"
                ] + [(b"content-length", b"%d" % len(body))]
                await send(start)
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, hold)


def _with_headers(start: Message, policy: bytes) -> list[tuple[bytes, bytes]]:
    return [
        *start.get("headers", []),
        (b"content-security-policy", policy),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
    ]


def _install_request_ids(app: FastAPI) -> None:
    app.add_middleware(RequestIds)


class RequestIds:
    """Pure ASGI middleware: an `x-request-id` on every response (the caller's, or a new one)
    and an access log line. (Starlette's BaseHTTPMiddleware would add a task per request.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        send_with_id = StatusSend(send, 0, ((b"x-request-id", rid),))
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
                    send_with_id.status,
                    (time.perf_counter() - started) * 1000,
                    rid.decode(),
                )
