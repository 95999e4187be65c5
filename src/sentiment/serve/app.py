"""The SageMaker-compatible model endpoint: `GET /ping`, `POST /invocations`, and extras.

The contract is SageMaker BlazingText's for supervised models:

- `application/json`: `{"instances": ["text", ...], "configuration": {"k": 2}}` →
  `[{"label": ["__label__positive", ...], "prob": [0.97, ...]}, ...]`, one object per instance;
- `application/jsonlines`: one `{"source": "text", "k": 3}` per line → one
  `{"label": [...], "prob": [...]}` per line.

HTTP is a thin skin: decode (codecs.py), predict with the one inference path
(`sentiment.model.Model.predict`, which normalizes raw text as prepare did), encode. Every
failure a client can cause is a `SentimentError` with its status and a JSON body; anything else
is a bug and the only way to a 500.

SageMaker's runtime route, `POST /endpoints/{name}/invocations` (what AWS SDKs' InvokeEndpoint
calls), is answered by the same handler (serve/runtime_api.py).

Extras: `"configuration": {"raw_scores": true}` (the model's own probabilities) and
`{"answers": true}` (each object also holds `sentiment` and `scores`, the four answers of
`sentiment.answers`), `GET /metrics` (Prometheus), `POST /admin/model` (swap the model without downtime,
protected by a bearer token), `GET /` (what is loaded).
"""

from __future__ import annotations

import asyncio
import ctypes
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Lifespan, Receive, Scope, Send

from sentiment import answers as answering
from sentiment.config import Settings
from sentiment.errors import (
    Forbidden,
    ModelError,
    SentimentError,
    Unauthorized,
    Unavailable,
    UsageError,
)
from sentiment.http_common import error_handlers
from sentiment.model import Model, _model_name, load_model, load_model_bin
from sentiment.serve import codecs, loading, runtime_api
from sentiment.serve.metrics import Metrics
from sentiment.serve.peers import Peers

log = logging.getLogger("sentiment.serve")

# Batches this large are predicted in a worker thread so the event loop keeps answering.
THREAD_BATCH = 64


@dataclass
class ModelSlot:
    """The model being served. Swapping replaces the reference in one step; a request keeps
    the model it started with, so requests in flight finish on the old one."""

    model: Model | None = None
    ref: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# How long a swap waits for the other worker processes to serve the new model too.
PEERS_TIMEOUT = 300.0
# The largest body POST /admin/model takes ({"model": "<reference>"}).
ADMIN_MAX_BYTES = 64 * 1024


class Endpoint:
    def __init__(
        self,
        settings: Settings,
        model: Model | None,
        *,
        raw: bool | None = None,
        peers: Peers | None = None,
        generation: int = 0,
    ) -> None:
        self.settings = settings
        self.slot = ModelSlot(model, settings.model)
        self.raw = settings.serve_raw if raw is None else raw
        self.metrics = Metrics()
        self.peers = peers  # the other worker processes, when there are several
        self.generation = generation  # the peers' model generation this worker serves
        if model is not None:
            self.metrics.model_loaded(model)

    async def ping(self, request: Request) -> Response:
        if self.slot.model is None:
            raise Unavailable("The model is not loaded yet.", hint="Retry in a moment.")
        return Response(status_code=200)

    async def invocations_asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /invocations as a plain ASGI handler: the same steps as a Starlette route
        without its request object, routing and middleware, which cost more than normalizing
        and predicting a text (issue 6 measures requests/s against a raw echo). It records its
        own metrics (the metrics middleware wraps the other routes)."""
        started = time.perf_counter()
        try:
            model = self.slot.model
            if model is None:
                raise Unavailable("The model is not loaded yet.", hint="Retry in a moment.")
            content_type = length = None
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value
                elif name == b"content-length":
                    length = value
            kind = codecs.content_type(content_type.decode("latin-1") if content_type else None)
            body = await codecs.read_body(receive, length, codecs.MAX_BODY_BYTES)
            batch = codecs.decode(kind, body)
            self.metrics.instances.observe(len(batch.texts))
            if len(batch.texts) >= THREAD_BATCH:
                payload = await run_in_threadpool(_predict_encoded, model, batch, self.raw, kind)
            else:
                payload = _encoded(model, batch, self.raw, kind)
            status, media_type = 200, kind
        except SentimentError as err:
            status, payload, media_type = err.status_code, orjson.dumps(err.to_dict()), codecs.JSON
        except Exception:
            log.exception("unexpected error on /invocations")
            status, media_type = 500, codecs.JSON
            payload = b'{"error":"internal","message":"Internal error; it has been logged."}'
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", _MEDIA_TYPES[media_type]),
                        (b"content-length", b"%d" % len(payload)),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
        finally:
            self.metrics.observe("/invocations", status, time.perf_counter() - started)

    async def describe(self, request: Request) -> Response:
        model = self.slot.model
        return JSONResponse(
            {
                "model": model.describe() if model else None,
                "ref": self.slot.ref,
                "raw": self.raw,
                "pid": os.getpid(),  # which worker process answered
                # What /invocations' "configuration" accepts (the API asks for the four answers
                # only from an endpoint that lists "answers").
                "configuration": list(codecs.CONFIGURATION),
            }
        )

    async def swap(self, request: Request) -> Response:
        """POST /admin/model {"model": REF}: load REF off the event loop, then swap it in."""
        self._authorize(request)
        body = await codecs.read_body(
            request.receive, request.headers.get("content-length", "").encode(), ADMIN_MAX_BYTES
        )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise UsageError(
                'The body must be JSON: {"model": "<job name, model.tar.gz or .bin>"}.'
            ) from None
        ref = data.get("model") if isinstance(data, dict) else None
        if not isinstance(ref, str) or not ref:
            raise UsageError("Field 'model' must be a non-empty string naming a model.")
        async with self.slot.lock:
            new, previous = await self._load_and_swap(ref)
            if self.peers is not None:
                self.generation = await run_in_threadpool(self.peers.publish, ref, new.path)
                self.peers.mark_applied(self.generation)
        answer: dict[str, Any] = {
            "model": new.describe(),
            "previous": previous,
        }
        if self.peers is not None:  # the others follow; answer once they serve it too
            done = await run_in_threadpool(self.peers.wait_applied, self.generation, PEERS_TIMEOUT)
            answer["workers"] = {"swapped": done, "of": self.peers.workers}
            if done < self.peers.workers:
                log.warning("model swap: %d of %d workers serve %s", done, self.peers.workers, ref)
        return JSONResponse(answer)

    async def _load_and_swap(
        self, ref: str, pinned: str | None = None
    ) -> tuple[Model, dict[str, Any] | None]:
        """Load `ref` (from `pinned`, the copy a sibling published) off the event loop, then
        serve it (the caller holds the slot's lock); returns it and what the old one was."""
        new = await run_in_threadpool(self._load, ref, pinned)
        old = self.serve(new, ref)
        log.info(
            "model swapped: %s -> %s (labels %s)",
            old.name if old else None,
            new.name,
            ", ".join(new.classes),
        )
        previous = old.describe() if old else None
        del old  # unmapped once the requests in flight on it are answered
        release_freed_memory()
        return new, previous

    def serve(self, model: Model, ref: str) -> Model | None:
        """Serve `model` from now on; returns the one it replaces (None at startup)."""
        old = self.slot.model
        self.slot.model, self.slot.ref = model, ref
        self.metrics.model_loaded(model, old)
        return old

    def _load(self, ref: str, pinned: str | None) -> Model:
        """The model `ref` names. Any failure is the same 422 (the details go to the log): an
        admin error must not tell whether some path exists on this machine, or what it holds."""
        from sentiment.storage import open_bucket

        try:
            if pinned is not None:
                return load_model_bin(
                    Path(pinned), name=_model_name(ref), label_map=self.settings.label_map
                )
            bucket = open_bucket(self.settings.bucket)
            return load_model(
                ref,
                bucket=bucket,
                cache_dir=self.settings.cache_dir,
                label_map=self.settings.label_map,
            )
        except Exception as err:  # a name the system refuses, a broken file...
            log.error("could not load the model %r: %r", ref[:200], err)
            shown = ref if len(ref) <= 200 else ref[:200] + "..."
            raise ModelError(
                f"Could not load a model from {shown!r}.",
                hint="Give a job name, model.tar.gz, folder or fastText .bin that this server "
                "can read; the endpoint keeps serving its model.",
            ) from None

    async def follow_peers(self) -> None:
        """Serve the model the other workers published, whenever it changes, and publish this
        worker's metric counts every second (a task)."""
        peers = self.peers
        assert peers is not None
        ticks = 0
        while True:
            await asyncio.sleep(0.1)
            ticks += 1
            if ticks % 10 == 1:  # every second: this worker's counts, for its siblings' scrapes
                await run_in_threadpool(peers.publish_metrics, self.metrics.snapshot())
            if int(peers.generation.value) <= self.generation:
                continue
            async with self.slot.lock:
                generation, ref, pinned = peers.latest()
                if generation <= self.generation:
                    continue  # this worker published it (or a newer one is already served)
                try:
                    await self._load_and_swap(ref, pinned)
                except SentimentError as err:  # keeps the old model; the swap reports it
                    log.error("could not follow the model swap to %s: %s", ref, err)
                    self.generation = generation
                    peers.mark_failed(generation)
                    continue
                self.generation = generation
                peers.mark_applied(generation)

    async def metrics_route(self, request: Request) -> Response:
        others = self.peers.sibling_metrics() if self.peers is not None else None
        body, media_type = self.metrics.render(others)
        return Response(body, media_type=media_type)

    def _authorize(self, request: Request) -> None:
        token = self.settings.admin_token
        if not token:
            raise Forbidden(
                "Admin routes are disabled.",
                hint="Start the endpoint with SENTIMENT_ADMIN_TOKEN set.",
            )
        given = request.headers.get("authorization", "")
        if not given.startswith("Bearer "):
            raise Unauthorized("Missing admin token.", hint="Send 'Authorization: Bearer <token>'.")
        # In constant time: a comparison that stops at the first differing byte tells a
        # timing attacker how much of a guess is right.
        if not hmac.compare_digest(given.removeprefix("Bearer ").encode(), token.encode()):
            raise Forbidden("Wrong admin token.")


def release_freed_memory() -> None:
    """Give the heap's free memory back to the system (glibc's `malloc_trim`; elsewhere
    nothing). A swapped-out model's dictionary and tables, freed, otherwise stay in the
    allocator's arenas, the new one's allocated beside them (by a thread of the pool): the soak
    measured a worker +8 MB resident (+5.5%) after its first swap; a process that loaded the
    benchmark model, then another and the first again in a thread, got 18 MB back this way."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


_LIBC = ctypes.CDLL(None)  # this process's C library
_MEDIA_TYPES = {codecs.JSON: codecs.JSON.encode(), codecs.JSONLINES: codecs.JSONLINES.encode()}


# Large batches are predicted and encoded this many texts at a time: the predictions of a 6 MB
# body of short texts (1.57M of them) as Python tuples took 937 MB at peak, against ~330 MB
# this way (the answer's bytes, 94 MB, are the rest).
ENCODE_CHUNK = 4096


def _predict_encoded(model: Model, batch: codecs.Batch, raw: bool, kind: str) -> bytes:
    """The encoded answer to `batch`, predicted and encoded a chunk at a time."""
    texts, ks = batch.texts, batch.ks
    parts = [
        _encoded(
            model,
            replace(batch, texts=texts[i : i + ENCODE_CHUNK], ks=ks[i : i + ENCODE_CHUNK]),
            raw,
            kind,
        )
        for i in range(0, len(texts), ENCODE_CHUNK)
    ]
    if kind == codecs.JSONLINES or len(parts) == 1:
        return b"".join(parts)
    return b"[" + b",".join(part[1:-1] for part in parts) + b"]"  # one JSON list of them all


def _encoded(model: Model, batch: codecs.Batch, raw: bool, kind: str) -> bytes:
    """The encoded answer to `batch`: its predictions and, when asked, the four answers of
    `sentiment.answers` (the API asks for them rather than sending each text's sentences)."""
    if not batch.answers or not batch.texts:
        return codecs.encode(kind, _predict(model, batch, raw))
    if batch.same_k:  # each text predicted once for both
        predictions, scores, decided = model.top_and_answers(
            batch.texts,
            min(batch.ks[0], len(model.labels)),
            raw=raw,
            raw_scores=batch.raw_scores,
        )
    else:
        predictions = _predict(model, batch, raw)
        scores = model.answer_scores(batch.texts, raw=raw, raw_scores=batch.raw_scores)
        decided = answering.decided(scores, answering.weights_for(model.answer_labels))
    return codecs.encode(kind, predictions, codecs.Answers(scores, decided))


def _predict(model: Model, batch: codecs.Batch, raw: bool) -> list[codecs.Top]:
    texts = batch.texts
    if not texts:
        return []
    ks = batch.ks
    scores = batch.raw_scores
    if batch.same_k:
        return model.top(texts, k=min(ks[0], len(model.labels)), raw=raw, raw_scores=scores)
    return [
        model.top([t], k=min(k, len(model.labels)), raw=raw, raw_scores=scores)[0]
        for t, k in zip(texts, ks, strict=True)
    ]


def create_app(
    settings: Settings,
    model: Model | None = None,
    *,
    raw: bool | None = None,
    peers: Peers | None = None,
    generation: int = 0,
) -> EndpointApp:
    """The endpoint app for a loaded model (None: loaded at startup from settings.model).
    `peers`: the endpoint's other worker
    processes, which follow each other's model swaps."""
    endpoint = Endpoint(settings, model, raw=raw, peers=peers, generation=generation)

    routes = [
        Route("/ping", endpoint.ping, methods=["GET"]),
        # Reached only for methods other than POST (405); POST takes the lane below.
        Route("/invocations", _AsgiEndpoint(endpoint.invocations_asgi), methods=["POST"]),
        Route("/metrics", endpoint.metrics_route, methods=["GET"]),
        Route("/admin/model", endpoint.swap, methods=["POST"]),
        Route("/", endpoint.describe, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers=error_handlers(log),
        lifespan=_lifespan(endpoint) if model is None or peers is not None else None,
    )
    app.state.endpoint = endpoint
    return EndpointApp(endpoint, app)


class EndpointApp:
    """The endpoint's ASGI app: POST /invocations (and SageMaker's runtime API) straight to its
    handler, every other request through the Starlette app `routes` (measured). `state` is
    that app's."""

    def __init__(self, endpoint: Endpoint, routes: Starlette) -> None:
        self.endpoint = endpoint
        self.state = routes.state
        self._measured = endpoint.metrics.wrap(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The hot route skips Starlette's routing and middleware stack (measured in process:
        # ~6 us less a one-text request than through the Route below).
        if (
            scope["type"] == "http"
            and scope["path"] == "/invocations"
            and scope["method"] == "POST"
        ):
            await self.endpoint.invocations_asgi(scope, receive, send)
        elif scope["type"] == "http" and runtime_api.is_runtime_route(scope):
            # SageMaker's runtime API (InvokeEndpoint), answered by the same handler.
            await runtime_api.invoke_endpoint(self.endpoint.invocations_asgi, scope, receive, send)
        else:
            await self._measured(scope, receive, send)


class _AsgiEndpoint:
    """A plain ASGI handler as a Starlette route (Starlette calls non-functions as ASGI apps)."""

    def __init__(self, handler: ASGIApp) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(scope, receive, send)


def _lifespan(endpoint: Endpoint) -> Lifespan[Starlette]:
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if endpoint.slot.model is None:
            # Into the slot, not a local: this coroutine stays suspended at its `yield` while
            # the server runs, and a local would keep the startup model mapped after swaps.
            endpoint.serve(*await run_in_threadpool(loading.load_served_model, endpoint.settings))
        follower = None
        if endpoint.peers is not None:
            follower = asyncio.get_running_loop().create_task(endpoint.follow_peers())
        yield
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower

    return lifespan
