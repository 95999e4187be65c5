"""One error root for the whole system.

Every error a user can cause or fix is a `SentimentError`. It knows the HTTP status a server
answers with and the exit code the CLI ends with, and its message says what went wrong and
what to do. Anything else that escapes is a bug.
"""

from __future__ import annotations

from typing import Any


class SentimentError(Exception):
    """Root of every expected error. `str(err)` is the message shown to the user."""

    status_code: int = 500
    exit_code: int = 1
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        self.message = message
        self.hint = hint
        self.details = details
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.render()}
        body.update({k: v for k, v in self.details.items() if v is not None})
        return body


class UsageError(SentimentError):
    """A flag, setting or request field has a bad value."""

    status_code = 400
    exit_code = 2
    code = "bad_request"


class ConfigError(UsageError):
    code = "bad_setting"


class InputNotFound(SentimentError):
    """An input file, artifact or job does not exist; the hint names the command that makes it."""

    status_code = 404
    exit_code = 3
    code = "not_found"


class DataError(SentimentError):
    """Input data exists but cannot be used as it is (empty, unknown labels, bad layout)."""

    status_code = 422
    exit_code = 4
    code = "bad_data"


class ModelError(SentimentError):
    """A model file cannot be loaded or does not fit the request."""

    status_code = 422
    exit_code = 4
    code = "bad_model"


class DownloadError(SentimentError):
    """A dataset could not be fetched or failed its integrity check."""

    status_code = 502
    exit_code = 5
    code = "download_failed"


class UnsupportedMediaType(SentimentError):
    status_code = 415
    exit_code = 2
    code = "unsupported_media_type"


class PayloadTooLarge(SentimentError):
    status_code = 413
    exit_code = 2
    code = "payload_too_large"


class Unauthorized(SentimentError):
    status_code = 401
    exit_code = 2
    code = "unauthorized"


class Forbidden(SentimentError):
    status_code = 403
    exit_code = 2
    code = "forbidden"


class Unavailable(SentimentError):
    """A service we depend on is down or not ready (503)."""

    status_code = 503
    exit_code = 6
    code = "unavailable"


class UpstreamError(SentimentError):
    """A service we called answered with an error (502)."""

    status_code = 502
    exit_code = 6
    code = "bad_gateway"


class UpstreamTimeout(SentimentError):
    status_code = 504
    exit_code = 6
    code = "gateway_timeout"


class JobFailed(SentimentError):
    exit_code = 7
    code = "job_failed"


class Interrupted(SentimentError):
    """The user stopped a long-running command (Ctrl-C / SIGTERM)."""

    exit_code = 130
    code = "interrupted"
