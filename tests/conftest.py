"""Shared fixtures: the real data beside the repository, free ports, a small real model."""

from __future__ import annotations

import csv
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    from sentiment.text import compose, normalize

    folder = tmp_path_factory.mktemp("tiny-model")
    lines = []
    for label, title, body in read_reviews(POLARITY / "train.csv"):
        name = map_label(Layout.POLARITY, label, Policy.BINARY)
        assert name is not None
        lines.append(f"{with_prefix(name)} {normalize(compose(title, body))}")
    train = folder / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(
        str(train), epoch=10, lr=0.1, dim=10, wordNgrams=2, minCount=2, seed=1, thread=1, verbose=0
    )
    model.save_model(str(folder / "model.bin"))
    yield folder


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


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A real headless Chromium driven by Playwright (one per test session)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    """A fresh browser page; closed after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    pg = context.new_page()
    yield pg
    context.close()


SCREENSHOTS = REPO / "tests" / "out" / "screenshots"


class Process:
    """A `sentiment` command running as a real child process, with its output captured to a file."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys

        self.log = log
        self.handle = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sentiment", *args],
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


@pytest.fixture(scope="session")
def endpoint(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `sentiment serve` process with the tiny model, shared by the session."""
    process, url = start_endpoint(
        tiny_model_dir / "model.bin", tmp_path_factory.mktemp("endpoint") / "serve.log"
    )
    yield url
    process.stop()
