"""Running the endpoint: uvicorn, one or several worker processes, graceful shutdown.

uvicorn finishes in-flight requests on SIGTERM/Ctrl-C before it exits (its graceful shutdown),
which is what SageMaker expects of a container. With several workers, each worker process
builds its settings from the environment the parent set up (`SENTIMENT_*`, read by
`sentiment.config` as always) and loads the model itself (the weights are a read-only map of
the .bin, so the processes share one copy).

Why our own small supervisor for several workers, not uvicorn's: uvicorn's workers share one
listening socket, and whichever worker wakes first accepts a whole burst of new connections. A
client pool opening its connections at once (wrk's 32 in benchmarks/serve) then lands on one
worker, which serves at one core's speed while the others idle: measured, 22.9k req/s against
31-33k when the connections happened to spread. Here every worker listens on its own socket
with SO_REUSEPORT, and the kernel spreads connections across them as they arrive. Where
SO_REUSEPORT does not exist, uvicorn's workers are used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from sentiment.config import Settings
from sentiment.errors import InputNotFound

log = logging.getLogger("sentiment.serve")


def resolve_model_ref(settings: Settings) -> str:
    """settings.model, else SageMaker's /opt/ml/model inside a container."""
    if settings.model:
        return settings.model
    folder = Path(settings.sagemaker_model_dir)
    if folder.is_dir():
        return str(folder)
    raise InputNotFound(
        "No model to serve.",
        hint=f"Give --model (a job name, model.tar.gz, folder or .bin), or put model.bin in {folder}.",
    )


def app_from_environment() -> object:
    """uvicorn factory for worker processes: settings from the environment, model at startup."""
    from sentiment.serve.app import create_app

    settings = Settings.load()
    configure_logging(settings.log_level)
    return create_app(settings)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def server_options(host: str, port: int, log_level: str) -> dict[str, Any]:
    """How uvicorn runs the endpoint (benchmarks/serve runs its echo app the same way)."""
    return {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "http": "httptools",
        "loop": "uvloop",
    }


def run_server(settings: Settings) -> None:
    """Serve until SIGTERM/Ctrl-C; returns after a graceful shutdown."""
    from sentiment.serve.app import create_app

    ref = resolve_model_ref(settings)
    settings = settings.replace(model=ref)
    configure_logging(settings.log_level)
    log.info(
        "starting endpoint for model %s on http://%s:%d", ref, settings.host, settings.serve_port
    )
    common = server_options(settings.host, settings.serve_port, settings.log_level)
    if settings.serve_workers > 1:
        # Passed on to the worker processes, which read their settings as any process does.
        for name, value in {
            "MODEL": ref,
            "BUCKET": settings.bucket,
            "CACHE_DIR": str(settings.cache_dir),
            "SERVE_RAW": "true" if settings.serve_raw else "false",
            "ADMIN_TOKEN": settings.admin_token,
            "LOG_LEVEL": settings.log_level,
        }.items():
            os.environ[f"SENTIMENT_{name}"] = value
        if hasattr(socket, "SO_REUSEPORT"):
            raise SystemExit(run_workers(settings.serve_workers, common))
        uvicorn.run(
            "sentiment.serve.server:app_from_environment",
            factory=True,
            workers=settings.serve_workers,
            **common,
        )
    else:
        uvicorn.run(create_app(settings), **common)


# A worker that exits with this code never started (its model did not load): fatal.
STARTUP_FAILED = 3


def run_workers(count: int, options: dict[str, Any], app: str | None = None) -> int:
    """Run `count` worker processes of the endpoint (or of the ASGI app `app`, "module:attr":
    benchmarks/serve measures its raw echo on this same stack) until SIGTERM/SIGINT, then stop
    them gracefully; a worker that dies is replaced. Returns the exit code (0, or
    STARTUP_FAILED)."""
    import multiprocessing

    if options["port"] == 0:  # one port for all: pick it here
        with socket.socket(_family(options["host"])) as probe:
            probe.bind((options["host"], 0))
            options = options | {"port": probe.getsockname()[1]}
    import tempfile

    from sentiment.serve.peers import Peers

    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    shared = tempfile.TemporaryDirectory(prefix="sentiment-serve-")
    peers = Peers(Path(shared.name), context.Value("q", 0), context.Array("q", count))

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def start(index: int, barrier: Any = None) -> Any:
        process = context.Process(
            target=_worker, args=(options, os.getpid(), barrier, app, peers.for_worker(index))
        )
        process.start()
        return process

    together = context.Barrier(count)
    workers = [start(i, together) for i in range(count)]
    log.info(
        "%d workers on http://%s:%d (pids %s)",
        count,
        options["host"],
        options["port"],
        ", ".join(str(w.pid) for w in workers),
    )
    code = 0
    try:
        while not stop.wait(0.5):
            for i, worker in enumerate(workers):
                if worker.exitcode is None:
                    continue
                if worker.exitcode == STARTUP_FAILED:
                    log.error("worker %s could not start; stopping the endpoint", worker.pid)
                    code = STARTUP_FAILED
                    stop.set()
                    break
                log.warning("worker %s exited (%s); starting another", worker.pid, worker.exitcode)
                workers[i] = start(i)  # the others serve meanwhile: no waiting for them
    finally:
        for worker in workers:  # each finishes its requests in flight (uvicorn's shutdown)
            if worker.exitcode is None and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + options["timeout_graceful_shutdown"] + 10
        for worker in workers:
            worker.join(max(0.1, deadline - time.monotonic()))
            if worker.exitcode is None:
                worker.kill()
                worker.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shared.cleanup()
    log.info("all workers stopped")
    return code


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _worker(
    options: dict[str, Any], parent: int, barrier: Any, app_ref: str | None, peers: Any
) -> None:
    """One worker process: loads the model, waits for its siblings (`barrier`; None for a
    replacement), then serves on its own SO_REUSEPORT socket on the shared port. Listening only
    once every worker is ready, no client's connections pile onto the first one up."""
    from sentiment.errors import SentimentError
    from sentiment.serve.app import create_app, load_served_model

    os.setpgrp()  # a terminal's Ctrl-C reaches the supervisor, which stops workers once
    app: Any = app_ref
    if app_ref is None:
        settings = Settings.load()
        configure_logging(settings.log_level)
        generation, swapped_to = peers.latest()  # a replacement starts on the latest swap
        if swapped_to is not None:
            settings = settings.replace(model=swapped_to)
        try:
            model, ref = load_served_model(settings)
        except SentimentError as err:
            log.error("worker %d could not load the model: %s", os.getpid(), err)
            raise SystemExit(STARTUP_FAILED) from None
        peers.mark_applied(generation)
        app = create_app(settings.replace(model=ref), model, peers=peers, generation=generation)
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
    uvicorn.Server(config).run(sockets=[sock])
