"""Running the endpoint: uvicorn, one or several worker processes, graceful shutdown.

uvicorn finishes in-flight requests on SIGTERM/Ctrl-C before it exits (its graceful shutdown),
which is what SageMaker expects of a container. With several workers, each worker process
builds its settings from the environment the parent set up (`SENTIMENT_*`, read by
`sentiment.config` as always) and loads the model itself (the weights are a read-only map of
the .bin, so the processes share one copy). Workers are forked from the supervisor, which has
imported what they run: a replacement starts serving in a fraction of a second.

Why our own small supervisor for several workers, not uvicorn's: uvicorn's workers share one
listening socket, and whichever worker wakes first accepts a whole burst of new connections. A
client pool opening its connections at once (wrk's 32 in benchmarks/serve) then lands on one
worker, which serves at one core's speed while the others idle: measured, 22.9k req/s against
31-33k when the connections happened to spread. Here every worker listens on its own socket
with SO_REUSEPORT, and the kernel spreads connections across them as they arrive. Where
SO_REUSEPORT does not exist, uvicorn's workers are used.

A worker that dies is replaced at once (the supervisor sleeps until a worker exits or a signal
arrives), on the model its siblings serve (pinned by `peers`), while the others go on serving; one that keeps dying early is restarted after a growing delay. Only a
failure of the first start (no worker has served yet) stops the endpoint, with the worker's
error and exit code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from sentiment.config import HANDED_OVER, Settings
from sentiment.errors import SentimentError
from sentiment.http_common import configure_logging, server_options
from sentiment.serve.loading import resolve_model_ref

log = logging.getLogger("sentiment.serve")


def app_from_environment() -> object:
    """uvicorn factory for worker processes: settings from the environment, model at startup."""
    from sentiment.serve.app import create_app

    settings = Settings.inherited()
    configure_logging(settings.log_level)
    return create_app(settings)


def run_server(settings: Settings) -> None:
    """Serve until SIGTERM/Ctrl-C; returns after a graceful shutdown. A model that does not
    load is a `SentimentError` raised here (the CLI shows it and exits with its code)."""
    from sentiment.model import resolve_model_bin
    from sentiment.storage import open_bucket

    ref = resolve_model_ref(settings)
    settings = settings.replace(model=ref)
    configure_logging(settings.log_level)
    log.info(
        "starting endpoint for model %s on http://%s:%d", ref, settings.host, settings.serve_port
    )
    common = server_options(settings.host, settings.serve_port, settings.log_level, settings)
    if settings.serve_workers > 1:
        # The workers get the settings whole: forked, as an argument; started by uvicorn, in
        # one variable (`Settings.inherited`), so no setting can be left out of a list.
        if hasattr(socket, "SO_REUSEPORT"):
            path = resolve_model_bin(
                ref, bucket=open_bucket(settings.bucket), cache_dir=settings.cache_dir
            )
            code = run_workers(settings.serve_workers, common, model=(ref, path), settings=settings)
            raise SystemExit(code)
        os.environ[HANDED_OVER] = settings.dumps()
        uvicorn.run(
            "sentiment.serve.server:app_from_environment",
            factory=True,
            workers=settings.serve_workers,
            **common,
        )
    else:  # the model loads before uvicorn: a failure is the CLI's error
        uvicorn.run(endpoint_app(settings), **common)


def endpoint_app(settings: Settings, peers: Any = None) -> Any:
    """The endpoint app serving settings.model, loaded now (with `peers`: the latest model the
    workers agreed on, from its pinned copy). The model is referenced by the app alone, never by
    a frame that outlives this call (a worker's or the CLI's, which run as long as the server):
    so a model swapped out is unmapped once its last request is answered (issue 14's soak saw a
    worker keep its startup model mapped beside the current one after swaps A->B->A: +56% RSS)."""
    from sentiment.serve.app import create_app
    from sentiment.serve.loading import load_served_model

    if peers is None:
        model, ref = load_served_model(settings)
        return create_app(settings.replace(model=ref), model)
    # A replacement serves what its siblings serve, even if its original file is gone.
    generation, ref, pinned = peers.latest()
    model, ref = load_served_model(settings.replace(model=ref), pinned=Path(pinned))
    peers.mark_applied(generation)
    return create_app(settings.replace(model=ref), model, peers=peers, generation=generation)


# A worker that exits with this code never started and gave no error of its own.
STARTUP_FAILED = 3
# A worker that served this long before it died is restarted at once; one that dies sooner,
# again and again, waits longer each time (0.5 s, doubling, up to BACKOFF_MAX): a model that
# kills its worker must not make the supervisor spawn processes in a tight loop (issue 14 saw
# 68 restarts in 20 s).
STABLE_SECONDS = 30.0
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


class WorkerFailed(SentimentError):
    """The endpoint's first start failed: the error of the worker that could not start."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_workers(
    count: int,
    options: dict[str, Any],
    app: str | None = None,
    model: tuple[str, Path] | None = None,
    settings: Settings | None = None,
) -> int:
    """Run `count` worker processes of the endpoint serving `model` (its reference and .bin),
    with `settings` (default: `Settings.inherited()` in
    each worker), or of the ASGI app `app` ("module:attr": benchmarks/serve measures its raw echo on this same
    stack), until SIGTERM/SIGINT, then stop them gracefully. A worker that dies is replaced
    (with a growing delay if it keeps dying); if one fails before any worker served, the
    endpoint stops and `WorkerFailed` says why. Returns the exit code (0)."""
    import multiprocessing
    from multiprocessing.connection import wait as wait_for_any

    if options["port"] == 0:  # one port for all: pick it here
        with socket.socket(_family(options["host"])) as probe:
            probe.bind((options["host"], 0))
            options = options | {"port": probe.getsockname()[1]}
    from sentiment.serve.peers import Peers

    _preload(app)
    # Workers are forked from this process, which imported what they run (`_preload`): a
    # replacement skips the interpreter's start and the imports a spawned one did (the soak
    # measured a replacement answering 2.2-2.8 s after a kill -9, the process up after
    # 0.45-0.8 s; forked, see the soak's figures in the README).
    context = multiprocessing.get_context("fork")
    stop = threading.Event()
    peers = Peers.create(context, count)
    if model is not None:
        try:
            peers.start(*model)
        except BaseException:
            shutil.rmtree(peers.folder, ignore_errors=True)
            raise
    # A signal wakes the supervisor's wait at once (a byte on this pipe), as a worker's exit
    # does (its sentinel): no polling delay between a death and its replacement's start.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        with contextlib.suppress(OSError):  # a full pipe already wakes the supervisor
            os.write(wake_w, b"\0")

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}

    def start(index: int, barrier: Any = None) -> Any:
        process = context.Process(
            target=_worker,
            args=(options, os.getpid(), barrier, app, peers.for_worker(index), settings),
        )
        # Blocked across the fork: a SIGTERM meant for the new worker waits until it has
        # dropped this process's handler (which would only set the child's copy of `stop`).
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        return process

    together = context.Barrier(count)
    workers: list[Any] = [start(i, together) for i in range(count)]
    started = [time.monotonic()] * count
    quick_exits = [0] * count  # exits in a row of a worker that died before STABLE_SECONDS
    due = [0.0] * count  # when an exited worker's replacement starts
    log.info(
        "%d workers on http://%s:%d (pids %s)",
        count,
        options["host"],
        options["port"],
        ", ".join(str(w.pid) for w in workers),
    )
    failure: WorkerFailed | None = None
    try:
        while not stop.is_set():
            now = time.monotonic()
            waits = [due[i] - now for i, w in enumerate(workers) if w is None]
            wait_for_any(
                [w.sentinel for w in workers if w is not None] + [wake_r],
                max(0.0, min(waits)) if waits else None,
            )
            if stop.is_set():
                break
            now = time.monotonic()
            for i, worker in enumerate(workers):
                if worker is None:
                    if now >= due[i]:
                        workers[i], started[i] = start(i), now
                    continue
                if worker.exitcode is None:
                    continue
                if not peers.serving.value:  # the first start failed: nothing to keep serving
                    code, message = peers.last_error() or (
                        STARTUP_FAILED,
                        f"A worker of the endpoint exited ({worker.exitcode}) while starting.",
                    )
                    log.error("worker %s could not start; stopping the endpoint", worker.pid)
                    failure = WorkerFailed(message, code)
                    stop.set()
                    break
                quick_exits[i] = 0 if now - started[i] >= STABLE_SECONDS else quick_exits[i] + 1
                delay = 0.0
                if quick_exits[i] > 1:
                    delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (quick_exits[i] - 2))
                log.warning(
                    "worker %s exited (%s); starting another in %.1fs (%d early exits in a row)",
                    worker.pid,
                    worker.exitcode,
                    delay,
                    quick_exits[i],
                )
                worker.close()  # its sentinel's descriptor
                workers[i], due[i] = None, now + delay  # the others serve meanwhile
                if delay == 0.0:
                    workers[i], started[i] = start(i), now
    finally:
        live = [w for w in workers if w is not None]
        for worker in live:  # each finishes its requests in flight (uvicorn's shutdown)
            if worker.exitcode is None and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + options["timeout_graceful_shutdown"] + 10
        for worker in live:
            worker.join(max(0.1, deadline - time.monotonic()))
            if worker.exitcode is None:
                worker.kill()
                worker.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
        shutil.rmtree(peers.folder, ignore_errors=True)
    log.info("all workers stopped")
    if failure is not None:
        raise failure
    return 0


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


# What a worker imports, imported by the supervisor before it forks them (`_preload`).
WORKER_MODULES = (
    "uvloop",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.websockets.auto",  # uvicorn.Config.load imports it
    "sentiment.serve.app",
    "sentiment.storage",
    "sentiment.engine.fasttext_bin",  # imported when a model loads
    "sentiment.engine._core",
    "sentiment.text_kernel",
)


def _preload(app: str | None) -> None:
    """Import here what a worker runs, so that workers forked from this process start with it
    imported: the endpoint's app (or the ASGI app `app`), uvicorn's protocol and event loop."""
    import importlib

    from uvicorn.importer import import_from_string

    for name in WORKER_MODULES:
        importlib.import_module(name)
    if app is not None:
        import_from_string(app)
    else:
        from sentiment.text_kernel import tables

        tables()  # the normalizer's character tables (cached): built once, 0.2 s, not per worker


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _worker(
    options: dict[str, Any],
    parent: int,
    barrier: Any,
    app_ref: str | None,
    peers: Any,
    settings: Settings | None,
) -> None:
    """One worker process (forked from the supervisor): loads the model, waits for its
    siblings (`barrier`; None for a replacement), then serves on its own SO_REUSEPORT socket on
    the shared port. Listening only once every worker is ready, no client's connections pile
    onto the first one up."""
    # The supervisor's handlers are no use here; its SIGTERM now stops the worker while it
    # loads, and uvicorn's handlers take over once it serves. Blocked since the fork (`start`).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    os.setpgrp()  # a terminal's Ctrl-C reaches the supervisor, which stops workers once
    app: Any = app_ref
    if app_ref is None:
        settings = settings or Settings.inherited()
        configure_logging(settings.log_level)
        try:
            app = endpoint_app(settings, peers)
        except Exception as err:  # whatever it is, the supervisor must know
            code = err.exit_code if isinstance(err, SentimentError) else STARTUP_FAILED
            message = str(err) if isinstance(err, SentimentError) else repr(err)
            log.error("worker %d could not load the model: %s", os.getpid(), message)
            peers.report_error(code, message)
            raise SystemExit(code) from None
    config = uvicorn.Config(app, **options)
    config.load()  # imports the app now, before the siblings are waited for
    if barrier is not None:  # a broken barrier: a sibling failed, the supervisor stops all
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=600)
    sock = socket.socket(_family(options["host"]), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((options["host"], options["port"]))

    def orphaned() -> None:  # the supervisor was killed: stop as if it had asked
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, daemon=True).start()
    _Server(config, peers).run(sockets=[sock])


class _Server(uvicorn.Server):
    """uvicorn's server, telling the peers once it serves: from then on a worker that dies is
    replaced, never a reason to stop the endpoint."""

    def __init__(self, config: uvicorn.Config, peers: Any) -> None:
        super().__init__(config)
        self.peers = peers

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.peers.mark_serving()
