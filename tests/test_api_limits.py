"""Issue 14 against a real `sentiment api` process: the key is checked before the body is read,
the body is capped while it streams in, and what a client sends never makes a 500."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Process, start_api

KEY = "s3cret-key"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def api(endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Process]]:
    """`sentiment api` with an API key, in front of the shared real endpoint."""
    process, url = start_api(
        tmp_path_factory.mktemp("api-limits") / "api.log",
        *("--endpoint-url", endpoint, "--api-key", KEY),
        env={"SENTIMENT_LOG_LEVEL": "warning"},
    )
    yield url, process
    process.stop()


def _raw_exchange(url: str, head: bytes, body_part: bytes, wait: float = 3.0) -> bytes:
    """Send a request head and only part of its body, and read what the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as sock:
        sock.sendall(head + body_part)
        received = b""
        deadline = time.monotonic() + wait
        while b"\r\n\r\n" not in received and time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


def test_key_is_checked_before_the_body_is_read(api: tuple[str, Process]) -> None:
    url, _ = api
    # 50 MB announced, 1 KB sent: the 401 must come without waiting for (or reading) the rest.
    head = (
        b"POST /sentiment HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    started = time.monotonic()
    answer = _raw_exchange(url, head, b'{"texts": ["' + b"a" * 1024)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert time.monotonic() - started < 2.5
    assert b"application/json" in answer.split(b"\r\n\r\n")[0].lower()


def test_oversized_bodies_are_413_without_buffering(api: tuple[str, Process]) -> None:
    url, process = api
    headers = {"x-api-key": KEY, "content-type": "application/json"}
    before = _rss_kb(process.proc.pid)
    # 40 MB of valid JSON: before the cap it was parsed whole (the issue measured 78 -> 660 MB
    # for 61 MB); now the declared length is refused at once.
    big = b'{"texts": ["' + b"good " * 8_000_000 + b'"]}'
    declared = httpx.post(f"{url}/sentiment", content=big, headers=headers, timeout=30)
    assert declared.status_code == 413, declared.text[:200]
    assert declared.json()["error"] == "payload_too_large"
    assert "25 texts" in declared.json()["message"]

    # The same body streamed without a length (chunked): refused once the cap is passed.
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    streamed = httpx.post(f"{url}/sentiment", content=chunks(), headers=headers, timeout=30)
    assert streamed.status_code == 413 and streamed.json()["error"] == "payload_too_large"
    grown_mb = (_rss_kb(process.proc.pid) - before) / 1024
    assert grown_mb < 20, f"the API grew by {grown_mb:.0f} MB for a refused body"


def test_the_cap_leaves_room_for_any_body_within_the_limits(api: tuple[str, Process]) -> None:
    url, _ = api
    # 25 texts of 5,000 bytes that JSON escapes 6x (control characters as \u0001): 750 kB,
    # within the limits, so not a 413.
    body = {"texts": ["\x01" * 4990 + "great" for _ in range(25)]}
    answer = httpx.post(f"{url}/sentiment", json=body, headers={"x-api-key": KEY}, timeout=30)
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.json()["results"]) == 25


def test_wrong_content_type_is_415_json(api: tuple[str, Process]) -> None:
    url, _ = api
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        answer = httpx.post(
            f"{url}/sentiment",
            content=b'{"text": "good"}',
            headers={"x-api-key": KEY, "content-type": kind},
        )
        assert answer.status_code == 415, (kind, answer.text)
        assert answer.json()["error"] == "unsupported_media_type"
