"""SageMaker's runtime API on our endpoint: `POST /endpoints/{name}/invocations`.

That is the route AWS SDKs call for InvokeEndpoint (boto3's `sagemaker-runtime` client,
`aws sagemaker-runtime invoke-endpoint`, the SDKs of other languages), so any of them works
against `sentiment serve` with an endpoint URL override (e.g. `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`).
The request is handled by the endpoint's own `/invocations` handler; this module only speaks
SageMaker's side of it:

- a success carries the headers SageMaker's runtime adds: `x-Amzn-Invoked-Production-Variant`
  (one variant, `AllTraffic`, the name `sentiment deploy` gives it) and `x-amzn-RequestId`;
- an error the container answers (4xx, 5xx) becomes SageMaker's `ModelError` (HTTP 424, with
  `OriginalStatusCode` and `OriginalMessage`), a 503 (model not loaded yet) its
  `ServiceUnavailable`, an invalid endpoint name a `ValidationException`; the error type is in
  `x-amzn-ErrorType`, where the SDKs read it.

The endpoint serves one model under whatever endpoint name the request uses (SageMaker's names'
syntax is checked): the name is routing in SageMaker, not part of the model.
The signature (SigV4) is not checked: this endpoint's access control is the network's.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/endpoints/"
SUFFIX = "/invocations"
VARIANT = b"AllTraffic"
# SageMaker's endpoint name syntax (CreateEndpoint's EndpointName pattern).
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


def is_runtime_route(scope: Scope) -> bool:
    path: str = scope["path"]
    return path.startswith(PREFIX) and path.endswith(SUFFIX) and scope["method"] == "POST"


async def invoke_endpoint(invocations: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer InvokeEndpoint with `invocations` (the endpoint's POST /invocations handler)."""
    request_id = str(uuid.uuid4()).encode()
    name = scope["path"][len(PREFIX) : -len(SUFFIX)]
    if not _NAME.fullmatch(name):
        await _error(
            send,
            400,
            "ValidationException",
            request_id,
            {"Message": f"Endpoint name {name!r} is not a valid SageMaker endpoint name."},
        )
        return
    failed: list[int] = []

    async def as_sagemaker(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = int(message["status"])
            if status == 200:
                headers = [
                    *message.get("headers", []),
                    (b"x-amzn-invoked-production-variant", VARIANT),
                    (b"x-amzn-requestid", request_id),
                ]
                await send({**message, "headers": headers})
            else:
                failed.append(status)  # answered with the body, reshaped
            return
        if not failed:
            await send(message)
            return
        status = failed[0]
        original = bytes(message.get("body", b"")).decode("utf-8", "replace")
        if status == 503:
            await _error(send, 503, "ServiceUnavailable", request_id, {"Message": original})
            return
        await _error(
            send,
            424,
            "ModelError",
            request_id,
            {
                "Message": f"Received client error ({status}) from primary with message "
                f'"{original}". See the endpoint\'s log.',
                "OriginalStatusCode": status,
                "OriginalMessage": original,
            },
        )

    await invocations(scope, receive, as_sagemaker)


async def _error(
    send: Send, status: int, kind: str, request_id: bytes, body: dict[str, Any]
) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(payload)),
                (b"x-amzn-errortype", kind.encode()),
                (b"x-amzn-requestid", request_id),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
