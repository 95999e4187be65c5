"""What the two HTTP apps, the endpoint (`sentiment.serve`) and the API (`sentiment.api`), share:
how uvicorn runs them, their log format, their JSON error answers and the ASGI `send` that
notes an answer's status for their metrics and access logs.

Below both apps' packages, like the connection protocol they run on (`sentiment.http_protocol`):
the API does not reach into the endpoint's package for what is not the endpoint's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler, Message, Send

from sentiment.config import Settings
from sentiment.errors import SentimentError
from sentiment.http_protocol import guarded_protocol


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def server_options(
    host: str, port: int, log_level: str, limits: Settings | None = None
) -> dict[str, Any]:
    """How uvicorn runs the endpoint and the API (benchmarks/serve runs its echo app the same
    way): read deadlines and the draining shutdown of `sentiment.http_protocol`, from `limits`
    (default: the settings' defaults)."""
    limits = limits or Settings()
    return {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "http": guarded_protocol(
            limits.http_header_timeout,
            limits.http_body_timeout,
            limits.http_drain_seconds,
            limits.http_connection_max_age,
        ),
        "loop": "uvloop",
    }


def error_handlers(
    log: logging.Logger, answer: type[JSONResponse] = JSONResponse
) -> Mapping[Any, ExceptionHandler]:
    """The JSON answers of both apps for our errors (their own status), HTTP errors (404, 405:
    with their headers, e.g. `Allow`) and bugs (a logged 500 that shows nothing internal)."""

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SentimentError)
        return answer(exc.to_dict(), status_code=exc.status_code)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return answer(
            {"error": "http_error", "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def on_bug(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return answer(
            {"error": "internal", "message": "Internal error; it has been logged."},
            status_code=500,
        )

    return {SentimentError: on_error, HTTPException: on_http, Exception: on_bug}


class StatusSend:
    """An ASGI `send` that notes the answer's status (`status`: `default` until the answer
    starts, e.g. 500 for an app that fails before answering) and adds `headers` to it."""

    __slots__ = ("headers", "send", "status")

    def __init__(self, send: Send, default: int, headers: tuple[tuple[bytes, bytes], ...] = ()):
        self.send = send
        self.status = default
        self.headers = headers

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self.headers:
                message["headers"] = [*message.get("headers", []), *self.headers]
        await self.send(message)
