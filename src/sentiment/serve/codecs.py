"""Request decoding and response encoding for `/invocations` (SageMaker BlazingText's formats)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from starlette.types import Receive

from sentiment.answers import SENTIMENTS
from sentiment.errors import PayloadTooLarge, UnsupportedMediaType, UsageError

# One prediction as `Model.top` gives it: (labels, probabilities), best first.
Top = tuple[tuple[str, ...], tuple[float, ...]]

JSON = "application/json"
JSONLINES = "application/jsonlines"
ACCEPTED = (JSON, JSONLINES)
# The keys of a JSON request's "configuration": BlazingText's, then ours (see `Batch`).
CONFIGURATION = ("k", "raw_scores", "answers")
# SageMaker's limit on an invocation payload.
MAX_BODY_BYTES = 6 * 1024 * 1024


@dataclass(slots=True)
class Batch:
    texts: list[str]
    ks: list[int]
    # The model's own probabilities instead of calibrated ones: `"configuration":
    # {"raw_scores": true}` beside BlazingText's `k`.
    raw_scores: bool = False
    # The four answers too (`"configuration": {"answers": true}`): each prediction object
    # gains `sentiment` and `scores` (see `encode`).
    answers: bool = False

    @property
    def same_k(self) -> bool:
        return len(set(self.ks)) <= 1


@dataclass(frozen=True, slots=True)
class Answers:
    """The four answers of a batch: (n, 4) scores in SENTIMENTS order and the answer's index
    per text (`sentiment.answers.decided`)."""

    scores: np.ndarray
    decided: list[int]


def content_type(header: str | None) -> str:
    if header == JSON:
        return JSON
    kind = (header or "").split(";", 1)[0].strip().lower()
    if kind in ("application/x-jsonlines", "application/jsonl"):
        kind = JSONLINES
    if kind not in ACCEPTED:
        raise UnsupportedMediaType(
            f"Content-Type {header or '(none)'!r} is not supported.",
            hint=f'Send {JSON} ({{"instances": [...]}}) or {JSONLINES} (one {{"source": ...}} per line).',
        )
    return kind


async def read_body(receive: Receive, declared: bytes | None, limit: int) -> bytes:
    """The body of a raw ASGI request, refused with 413 as soon as it is known to exceed
    `limit` bytes (from the declared Content-Length, or while it streams in)."""
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"The body has {int(declared):,} bytes; the limit is {limit:,}.",
            hint="Send fewer instances per request.",
        )
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise UsageError("The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"The body exceeds {limit:,} bytes.", hint="Send fewer instances per request."
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def decode(kind: str, body: bytes) -> Batch:
    if kind == JSON:
        return _decode_json(body)
    return _decode_jsonlines(body)


def _decode_json(body: bytes) -> Batch:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise UsageError(f"The body is not valid JSON: {err}.", field="body") from None
    if type(data) is not dict:
        raise UsageError(
            'The body must be a JSON object: {"instances": ["text", ...]}.', field="body"
        )
    instances = data.get("instances")
    if instances is None:
        raise UsageError(
            'Field "instances" is missing: send {"instances": ["text", ...]}.', field="instances"
        )
    if type(instances) is not list:
        raise UsageError('Field "instances" must be a list of strings.', field="instances")
    for i, item in enumerate(instances):
        if type(item) is not str:
            raise UsageError(
                f"instances[{i}] must be a string, got {type(item).__name__}.",
                field=f"instances[{i}]",
            )
    configuration = data.get("configuration")
    if configuration is None:
        k = 1
    elif type(configuration) is not dict:
        raise UsageError(
            'Field "configuration" must be an object like {"k": 2}.', field="configuration"
        )
    else:
        k = _k(configuration.get("k", 1), "configuration.k")
        flags = [configuration.get(name, False) for name in CONFIGURATION[1:]]
        for name, flag in zip(CONFIGURATION[1:], flags, strict=True):
            if type(flag) is not bool:
                raise UsageError(
                    f"configuration.{name} must be true or false, got {flag!r}.",
                    field=f"configuration.{name}",
                )
        return Batch(instances, [k] * len(instances), *flags)
    return Batch(instances, [k] * len(instances))


def _decode_jsonlines(body: bytes) -> Batch:
    texts: list[str] = []
    ks: list[int] = []
    for n, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise UsageError(f"Line {n} is not valid JSON: {err}.", field=f"line {n}") from None
        if not isinstance(item, dict) or not isinstance(item.get("source"), str):
            raise UsageError(
                f'Line {n} must be an object with a string "source".', field=f"line {n}.source"
            )
        texts.append(item["source"])
        ks.append(_k(item.get("k", 1), f"line {n}.k"))
    return Batch(texts, ks)


def _k(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a whole number of at least 1, got {value!r}.", field=name)
    return value


def encode(kind: str, predictions: Sequence[Top], answers: Answers | None = None) -> bytes:
    """SageMaker's answer: {"label": [...], "prob": [...]} per prediction, as a JSON list or
    one per line; with `answers`, each object also holds `"sentiment"` (one of
    `sentiment.answers.SENTIMENTS`) and `"scores"` (all four), which BlazingText clients
    ignore."""
    if answers is not None:
        names = SENTIMENTS
        pos, neg, neu, mix = names
        objects = [
            {
                "label": ls,
                "prob": ps,
                "sentiment": names[best],
                # A row of the (n, 4) matrix in SENTIMENTS order, as a dict literal (25 texts:
                # ~5 us less than dict(zip(names, row))).
                "scores": {pos: a, neg: b, neu: c, mix: d},
            }
            for (ls, ps), best, (a, b, c, d) in zip(
                predictions, answers.decided, answers.scores.tolist(), strict=True
            )
        ]
        if kind == JSON:
            return orjson.dumps(objects)
        return b"".join(orjson.dumps(obj) + b"\n" for obj in objects)
    if kind == JSON:
        return orjson.dumps([{"label": ls, "prob": ps} for ls, ps in predictions])
    return b"".join(orjson.dumps({"label": ls, "prob": ps}) + b"\n" for ls, ps in predictions)
