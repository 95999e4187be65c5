"""`sentiment up`: endpoint and API together, healthy, stopped cleanly."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from conftest import KeepPosting, Process, alive, free_port


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def test_up_serves_both_and_stops_both(tiny_model_dir: Path, tmp_path: Path) -> None:
    serve_port, api_port = free_port(), free_port()
    process = Process(
        [
            "up",
            "--model",
            str(tiny_model_dir / "model.bin"),
            "--serve-port",
            str(serve_port),
            "--api-port",
            str(api_port),
        ],
        tmp_path / "up.log",
    )
    try:
        process.wait_for(f"http://127.0.0.1:{api_port}/healthz", timeout=90)
        deadline = time.monotonic() + 10
        while "Up." not in process.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = process.output()
        assert (
            f"http://127.0.0.1:{api_port}/" in log
            and f"http://127.0.0.1:{serve_port}/invocations" in log
        )
        answer = httpx.post(
            f"http://127.0.0.1:{api_port}/sentiment", json={"text": "Love it, five stars"}
        )
        assert answer.status_code == 200 and answer.json()["results"][0]["sentiment"] == "positive"
        assert httpx.get(f"http://127.0.0.1:{api_port}/healthz").json()["endpoint"]["ok"] is True
        children = _children(process.proc.pid)
        assert len(children) == 2
        process.proc.send_signal(signal.SIGTERM)
        code = process.proc.wait(timeout=30)
    finally:
        process.stop()
    assert code == 0, process.output()
    assert not any(alive(pid) for pid in children), "a server outlived `sentiment up`"
    assert "Stopping" in process.output()


def test_up_stops_the_api_before_the_endpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Issue 14's soak: SIGTERM reached both servers at once, so the API, still finishing its
    requests, answered 503 to those it forwarded once the endpoint stopped listening. Now the
    API stops first (the endpoint answers it to the end), then the endpoint. 8 clients post
    through the API on keep-alive connections while `up` gets SIGTERM: every request is
    answered 200; after that a client can only find the API's port closed."""
    serve_port, api_port = free_port(), free_port()
    process = Process(
        ["up", "--model", str(tiny_model_dir / "model.bin"), "--serve-port", str(serve_port),
         "--api-port", str(api_port)],
        tmp_path / "order.log",
    )  # fmt: skip
    url = f"http://127.0.0.1:{api_port}"
    posting = KeepPosting(url, "/sentiment", {"text": "Love it, five stars"}, 8)
    try:
        process.wait_for(f"{url}/healthz", timeout=90)
        api_pid = next(
            pid
            for pid in _children(process.proc.pid)
            if b"api" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        )
        posting.start()
        time.sleep(1.5)
        process.proc.send_signal(signal.SIGTERM)
        code = process.proc.wait(timeout=60)
        time.sleep(0.3)
    finally:
        outcomes = posting.stop()
        process.stop()
    assert code == 0, process.output()
    bad = [o for o in outcomes if o not in ("200", "refused")]
    assert outcomes.count("200") > 20
    assert not bad, (len(bad), sorted(set(bad))[:5])
    # Each server logs "Shutting down" on its SIGTERM: the endpoint's comes after the API exited.
    log = process.output()
    api_done = log.index(f"Finished server process [{api_pid}]")
    assert log.count("Shutting down", 0, api_done) == 1, log[-3000:]
    assert "Shutting down" in log[api_done:], log[-3000:]


def test_up_with_a_bad_model_fails_clearly(tmp_path: Path) -> None:
    process = Process(
        [
            "up",
            "--model",
            str(tmp_path / "missing.bin"),
            "--serve-port",
            str(free_port()),
            "--api-port",
            str(free_port()),
        ],
        tmp_path / "bad.log",
    )
    code = process.proc.wait(timeout=60)
    process.stop()
    assert code == 6
    assert (
        "Error: the endpoint (sentiment serve) exited with code 3 while starting"
        in process.output()
    )


def test_servers_stop_when_up_is_killed(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`kill -9` of `sentiment up` gives it no chance to stop its servers: they used to run on,
    holding their ports, with nobody to stop them. The kernel now sends each SIGTERM when `up`
    dies (Linux's parent-death signal), and they shut down as on Ctrl-C."""
    serve_port, api_port = free_port(), free_port()
    process = Process(
        ["up", "--model", str(tiny_model_dir / "model.bin"), "--serve-port", str(serve_port),
         "--api-port", str(api_port)],
        tmp_path / "killed.log",
    )  # fmt: skip
    try:
        process.wait_for(f"http://127.0.0.1:{api_port}/healthz", timeout=90)
        children = _children(process.proc.pid)
        assert len(children) == 2
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in children if alive(pid)]
    finally:
        for pid in _children(process.proc.pid) + children:
            if alive(pid):
                subprocess.run(["kill", "-9", str(pid)], check=False)
        process.stop()
    assert not left, "a server outlived a killed `sentiment up`"
    for port in (serve_port, api_port):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"port {port} still answers")
    assert "Shutting down" in process.output()
