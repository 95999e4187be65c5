"""Shared pieces of the HTTP benchmarks: a model to serve, processes on 127.0.0.1, wrk runs."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "http"


def benchmark_model(seed: int = 1) -> Path:
    """A real model: the seed's hyperparameters on the prepared polarity sample (our trainer).
    Another `seed` gives another real model of the same shape (benchmarks/soak swaps to it)."""
    from benchmarks.train import SEED_HP, prepared, train_ours
    from sentiment.labels import Layout, Policy

    path = OUT / ("model.bin" if seed == 1 else f"model-seed{seed}.bin")
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    files = prepared("amazon_review_polarity", Layout.POLARITY, Policy.BINARY)
    trainer, _ = train_ours(files["train"], SEED_HP, 0, seed)
    trainer.save_bin(path)
    return path


def review_texts(limit: int = 1000) -> list[str]:
    """Raw review texts (title and body, as users type them) from the shared polarity test."""
    import csv

    with open(SHARED / "amazon_review_polarity" / "test.csv", newline="", encoding="utf-8") as fh:
        rows = [
            f"{r[1]}. {r[2]}".replace("\\n", " ")
            for r, _ in zip(csv.reader(fh), range(limit), strict=False)
        ]
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process started by `process`, and what it has logged so far."""

    proc: subprocess.Popen[bytes]
    _log: IO[bytes]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by every live process of the server's session
        (it is started in one of its own: its worker processes count too)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            if int(fields[3]) == self.proc.pid:  # session id (fields from the state on)
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def log(self) -> str:
        # pread: the process shares the file's offset, which a seek would move under it.
        fd = self._log.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


@contextmanager
def process(cmd: list[str], ready_url: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A server process, up once `ready_url` answers 200; stopped with SIGTERM afterwards."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ | (env or {}), cwd=ROOT,
        start_new_session=True,
    )  # fmt: skip
    server = Server(proc, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"{cmd} exited:\n{server.log()[-3000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{cmd} did not come up at {ready_url}")
            time.sleep(0.2)
        yield server
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@dataclass
class Load:
    requests_per_sec: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int

    def line(self) -> str:
        return (
            f"{self.requests_per_sec:9,.0f} req/s  p50 {self.p50_ms:6.2f} ms  "
            f"p99 {self.p99_ms:6.2f} ms  ({self.requests:,} requests, {self.errors} errors)"
        )


_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "{content_type}"
{headers}
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
"""


def wrk(
    url: str,
    body: bytes,
    *,
    connections: int = 32,
    seconds: int = 10,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Load:
    """wrk (one thread: the machine has 2 cores and the server needs them) with a POST body."""
    with tempfile.TemporaryDirectory() as tmp:
        body_path = Path(tmp) / "body"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        extra = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
        script.write_text(_LUA.format(content_type=content_type, body=body_path, headers=extra))
        done = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return parse_wrk(done.stdout)


def parse_wrk(out: str) -> Load:
    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if not (p50 and p99 and rps and total):
        raise SystemExit(f"could not read wrk's output:\n{out}")
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    return Load(
        float(rps.group(1)), ms(p50.group(1)), ms(p99.group(1)), errors, int(total.group(1))
    )


def instances_body(texts: list[str]) -> bytes:
    return json.dumps({"instances": texts}).encode()


def python() -> str:
    return sys.executable
