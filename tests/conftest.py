"""Shared fixtures: the real data beside the repository, free ports, a small real model."""

from __future__ import annotations

import contextlib
import csv
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sentiment.engine import EngineParams

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FULL = SHARED_DATA / "amazon_review_full"
POLARITY = SHARED_DATA / "amazon_review_polarity"

# The AWS fixtures (moto's server) live in their own module.
pytest_plugins = ("aws_fixtures",)


def pytest_configure(config: pytest.Config) -> None:
    if not (FULL / "train.csv").is_file() or not (POLARITY / "train.csv").is_file():
        raise pytest.UsageError(
            f"The shared review samples are missing: expected {SHARED_DATA} beside the repository "
            "(../shared/data with amazon_review_full/ and amazon_review_polarity/)."
        )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


def read_reviews(path: Path, limit: int | None = None) -> list[tuple[str, str, str]]:
    """Rows (label, title, body) of a shared CSV, as Python's csv module reads them."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [(r[0], r[1], r[2]) for r in csv.reader(fh)]
    return rows[:limit] if limit else rows


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real fastText supervised model (binary policy) trained on part of the polarity sample.

    Trained by the fastText reference library so that inference tests do not depend on our
    trainer; the trainer's own tests check that its models load and predict the same way.
    """
    import fasttext

    from sentiment.labels import Layout, Policy, map_label, with_prefix
    from sentiment.text import UNRECORDED_CLEANING, compose, normalize

    folder = tmp_path_factory.mktemp("tiny-model")
    # Its text made as it is served: it has no preprocessing.json (so no token rules).
    lines = []
    for label, title, body in read_reviews(POLARITY / "train.csv"):
        name = map_label(Layout.POLARITY, label, Policy.BINARY)
        assert name is not None
        lines.append(f"{with_prefix(name)} {normalize(compose(title, body), UNRECORDED_CLEANING)}")
    train = folder / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(
        str(train), epoch=10, lr=0.1, dim=10, wordNgrams=2, minCount=2, seed=1, thread=1, verbose=0
    )
    model.save_model(str(folder / "model.bin"))
    yield folder


def small_params(**overrides: object) -> EngineParams:
    """Engine parameters for a small, fast test model (dim 10, 4 epochs, one thread, seed 1),
    with `overrides` over them."""
    from sentiment.engine import EngineParams

    base: dict[str, object] = dict(
        dim=10, lr=0.1, epochs=4, min_count=1, word_ngrams=2, buckets=100_000,
        loss="softmax", threads=1, seed=1,
    )  # fmt: skip
    return EngineParams(**(base | overrides))  # type: ignore[arg-type]


def sample_splits(tiny_model_dir: Path, folder: Path, **splits: slice) -> Path:
    """`folder` with NAME.txt for each NAME=slice of the tiny model's training lines (the shared
    polarity sample, labelled and normalized), e.g. train=slice(3000) and
    validation=slice(20000, 21000), which share no line."""
    lines = (tiny_model_dir / "train.txt").read_text().splitlines()
    for name, part in splits.items():
        (folder / f"{name}.txt").write_text("\n".join(lines[part]) + "\n")
    return folder


def chromium_path() -> str:
    """Debian's Chromium (installed by `make test` via scripts/ensure-chromium.sh)."""
    import os
    import shutil

    # The test suite is allowed to read this one variable to find a non-standard browser.
    found = (
        os.environ.get("SENTIMENT_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not found:
        raise pytest.UsageError(
            "Chromium not found; run `make test` (it installs it) or set SENTIMENT_CHROMIUM."
        )
    return found


# Flags that keep headless Chromium off this machine's closed network and quiet as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A real headless Chromium driven by Playwright, one per test module: Playwright's sync API
    keeps an event loop running on this thread while it is open, so it is closed before the
    next module, whose tests may call asyncio.run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@contextlib.contextmanager
def open_page(browser: object) -> Iterator[Any]:
    """A fresh page of `browser` (in a context of its own), closed on leaving."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser page; closed after the test."""
    with open_page(browser) as pg:
        yield pg


SCREENSHOTS = REPO / "tests" / "out" / "screenshots"


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    cwd: Path = REPO,
    timeout: float = 300,
    script: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`sentiment ARGS` run to its end as a real child process (`python -m sentiment`, or with
    `script` the installed console script), its output captured as text; `env` is added to
    this process's environment."""
    command = [str(Path(sys.executable).parent / "sentiment")] if script else SENTIMENT
    return subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


# How tests run the CLI as a child process.
SENTIMENT = [sys.executable, "-m", "sentiment"]


class Process:
    """A `sentiment` command running as a real child process, with its output captured to a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self.handle = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*SENTIMENT, *args],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, **(env or {})},
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, url: str, timeout: float = 60.0) -> None:
        """Until `url` answers 200 (fails with the process's output if it dies or times out)."""
        import time

        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"process exited with {self.proc.returncode}:\n{self.output()}"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} not healthy after {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 20.0) -> int:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.handle.close()
        return int(self.proc.returncode)


def start_endpoint(
    model: Path | str, log: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[Process, str]:
    """`sentiment serve` for `model` on a free port; returns the process and its base URL."""
    port = free_port()
    process = Process(["serve", "--model", str(model), "--port", str(port), *extra], log, env)
    url = f"http://127.0.0.1:{port}"
    process.wait_for(f"{url}/ping")
    return process, url


def wait_for_an_epoch(record: Path, timeout: float = 120.0) -> None:
    """Until the job record at `record` shows a finished epoch (the job is mid-training)."""
    import json
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if record.exists() and json.loads(record.read_text()).get("epochs"):
            return
        time.sleep(0.05)
    raise AssertionError(f"no epoch in {record} after {timeout}s")


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


def start_api(log: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Process, str]:
    """`sentiment api ARGS` on a free port; returns the process and its base URL."""
    port = free_port()
    process = Process(["api", *args, "--port", str(port)], log, env)
    url = f"http://127.0.0.1:{port}"
    process.wait_for(f"{url}/healthz")
    return process, url


@pytest.fixture(scope="session")
def endpoint(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `sentiment serve` process with the tiny model, shared by the session."""
    process, url = start_endpoint(
        tiny_model_dir / "model.bin", tmp_path_factory.mktemp("endpoint") / "serve.log"
    )
    yield url
    process.stop()


def served(url: str, connections: int) -> dict[int, str]:
    """pid -> the sha256 of the model it serves, each request on a new connection (the kernel
    picks the worker; an error, a dead worker's socket until the kernel drops it, is skipped)."""
    import contextlib

    import httpx

    seen: dict[int, str] = {}
    for _ in range(connections):
        with httpx.Client() as client, contextlib.suppress(httpx.HTTPError):
            info = client.get(f"{url}/", timeout=5).json()
            seen[info["pid"]] = info["model"]["sha256"]
    return seen


class KeepPosting:
    """`clients` threads, each on its own keep-alive connection, POST `body` to `url + path` as
    fast as they can from `start()` until `stop()`. `outcomes` collects one string a request:
    `describe(response)` (the status code by default), "refused" once the server is gone (nothing
    was sent), or the error's type and message."""

    def __init__(
        self,
        url: str,
        path: str,
        body: object,
        clients: int,
        describe: object = None,
    ) -> None:
        import threading

        self.url, self.path, self.body = url, path, body
        self.describe = describe or (lambda r: str(r.status_code))
        self.outcomes: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]

    def _client(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    outcome = self.describe(http.post(self.path, json=self.body))  # type: ignore[operator]
                except httpx.ConnectError:
                    outcome = "refused"
                    self._stop.wait(0.05)
                except httpx.HTTPError as err:
                    outcome = f"{type(err).__name__}: {err}"
                with self._lock:
                    self.outcomes.append(outcome)

    def start(self) -> KeepPosting:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[str]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        return self.outcomes


@contextlib.contextmanager
def thread_server(app: object) -> Iterator[str]:
    """An ASGI app of a test's own (a stand-in for an outside service) served by uvicorn on a
    thread, on a free port of 127.0.0.1; yields its base URL."""
    import threading
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
