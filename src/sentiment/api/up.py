"""`sentiment up`: the endpoint and the API together, until Ctrl-C or SIGTERM.

Both run as child processes (`sentiment serve`, `sentiment api`), so each keeps its own
graceful shutdown and a crash of one is seen and reported. We wait until the endpoint answers
`/ping` and the API `/healthz`, print the URLs, and on Ctrl-C/SIGTERM/SIGHUP stop both (SIGTERM,
then SIGKILL after a grace period) so no process is left behind.

They stop one after the other: the API first, which finishes its requests in flight while the
endpoint still answers them, then the endpoint. Stopped together (as they were, and as a
terminal's Ctrl-C would reach them both), the API answered 503 to what it forwarded once the
endpoint had stopped listening (issue 14's soak). So each child runs in its own process group:
a terminal's Ctrl-C reaches `sentiment up` alone, which stops them in that order.

If `sentiment up` itself dies without stopping them (`kill -9`, the OOM killer), each child
gets SIGTERM from the kernel (Linux's parent-death signal, set in the child before it runs),
so no server is left holding its port with nobody to stop it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

import httpx
from rich.console import Console

from sentiment.config import Settings
from sentiment.errors import Unavailable


def _command(settings: Settings, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "sentiment",
        "--bucket", settings.bucket, "--cache-dir", str(settings.cache_dir), "--log-level", settings.log_level,
        *args,
    ]  # fmt: skip


_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that asks the kernel to send the child SIGTERM when its parent dies
    (Linux only; None elsewhere). It runs in the forked child before exec: only async-signal-
    safe work (one prctl call through a libc handle loaded here, in the parent)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call: nobody will signal
            os._exit(1)

    return hook


def start_stack(
    model_ref: str, settings: Settings
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    host = settings.host
    # The kernel sends the signal when the thread that forked the child exits: this one, the
    # main thread, which lives as long as `sentiment up`.
    on_parent_death = _parent_death_signal()
    serve = subprocess.Popen(
        _command(
            settings,
            "serve",
            "--model",
            model_ref,
            "--host",
            host,
            "--port",
            str(settings.serve_port),
        ),
        process_group=0,
        preexec_fn=on_parent_death,
    )
    api = subprocess.Popen(
        _command(
            settings,
            "api",
            "--endpoint-url",
            f"http://{host}:{settings.serve_port}",
            "--host",
            host,
            "--port",
            str(settings.api_port),
        ),
        process_group=0,
        preexec_fn=on_parent_death,
    )
    return serve, api


def wait_healthy(
    settings: Settings, procs: tuple[subprocess.Popen[bytes], ...], timeout: float = 120.0
) -> None:
    urls = [
        f"http://{settings.host}:{settings.serve_port}/ping",
        f"http://{settings.host}:{settings.api_port}/healthz",
    ]
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending:
        for proc in procs:
            if proc.poll() is not None:
                name = (
                    "the endpoint (sentiment serve)"
                    if proc is procs[0]
                    else "the API (sentiment api)"
                )
                raise Unavailable(
                    f"{name} exited with code {proc.returncode} while starting.",
                    hint="See its log above (a port in use? a bad model?).",
                )
        url = pending[0]
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                pending.pop(0)
                continue
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise Unavailable(f"{url} did not become healthy within {timeout:.0f}s.")
        time.sleep(0.2)


def stop(procs: tuple[subprocess.Popen[bytes], ...], grace: float = 15.0) -> None:
    """Stop each process in turn, in the order given (the API, then the endpoint it forwards
    to): SIGTERM, and SIGKILL if it has not exited after `grace` s. A second Ctrl-C/SIGTERM
    while they stop kills those left at once."""
    try:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    except KeyboardInterrupt:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def run_stack(model_ref: str, *, settings: Settings, console: Console | None = None) -> None:
    """Start endpoint + API, wait until healthy, print URLs, run until Ctrl-C/SIGTERM, stop both."""
    console = console or Console(stderr=True)
    procs = start_stack(model_ref, settings)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        wait_healthy(settings, procs)
        api = f"http://{settings.host}:{settings.api_port}"
        console.print(
            f"[bold green]Up.[/] Web page: {api}/  API: POST {api}/sentiment  docs: {api}/docs"
        )
        console.print(
            f"Model endpoint (SageMaker-compatible): http://{settings.host}:{settings.serve_port}/invocations"
        )
        console.print("Press Ctrl-C to stop.")
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        dead = next(p for p in procs if p.poll() is not None)
        raise Unavailable(
            f"A server exited unexpectedly (code {dead.returncode}); stopping the other."
        )
    except KeyboardInterrupt:
        console.print("Stopping…")
    finally:
        endpoint, api_server = procs
        stop((api_server, endpoint))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
