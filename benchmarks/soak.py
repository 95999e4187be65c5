"""The soak: the endpoint and the API under steady load while workers die, models swap, and
both servers stop, all in one run (issue 14).

`python -m benchmarks soak [--quick] [--duration S] [--connections C] [--no-move]
[--stop-together]` (default 300 s at 64 connections; `--quick`: 30 s at 16) starts, on
127.0.0.1, `sentiment serve --workers 2` with an admin token and `sentiment api
--endpoint-url` in front of it, and loads both: half the connections POST /sentiment through
the API, half POST /invocations on the endpoint directly (one text a request, the texts of the
shared polarity test in turn). Meanwhile, at fixed
fractions of the duration:

- 10%: memory (VmRSS) "start" sample, after warm-up (first requests touch the model's pages);
- 20%: `kill -9` of one endpoint worker (the supervisor replaces dead workers);
- 40%: model swap through `POST /admin/model` to a second real model (the benchmark model
  trained with another seed), given as a staged file that a deploy then moves away (the
  endpoint maps the model, so moving its file must not matter; `--no-move` leaves it);
- 60%: `kill -9` of the first one's replacement: its own replacement starts on the swapped
  model, whose file moved;
- 80%: model swap back to the first model;
- 100%: memory "end" sample, then SIGTERM to both servers with the load still running: the
  API first, the endpoint once the API has exited (`--stop-together`: both at once, as
  `sentiment up` does); the load stops once both have exited.

It prints requests served, errors by kind (HTTP status, connection reset / closed without an
answer / refused, timeouts), the memory of each process (supervisor, each worker slot, the
API) at start and end, each worker's replacement (from the kill to the new pid answering
GET /, which names the worker's pid), and the targets, pass or fail:

- no errors but the requests in flight on a killed worker (reported apart);
- no request cut by the final SIGTERM (reported apart: graceful shutdown finishes requests in
  flight and closes keep-alive connections cleanly; connections refused once a server stopped
  listening are expected and only counted);
- memory growth <= 10% for every process (a worker slot: the replacement at the end against
  the first worker at the start);
- every worker replaced within 2 s, serving the model the others serve.

The result, with every event and the per-second counts, goes to benchmarks/out/soak/ as JSON.
The exit code is 0 when the run completed, whatever the targets say (they are printed); it is
non-zero only if the run itself broke (a server did not start, the load generator failed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.loadgen import (
    ROOT,
    Server,
    benchmark_model,
    free_port,
    instances_body,
    process,
    python,
    review_texts,
)

OUT = ROOT / "benchmarks" / "out" / "soak"
WORKERS = 2
# Targets of issue 14.
REPLACED_WITHIN_S = 2.0
MEMORY_GROWTH_PCT = 10.0
# A request not answered within this is a timeout (the API waits 10 s for the endpoint).
REQUEST_TIMEOUT_S = 15.0
# A replacement not answering within this is reported as never replaced.
REPLACEMENT_WAIT_S = 20.0
# Between two GET / probes for the replacement: the resolution of its figure.
PROBE_INTERVAL_S = 0.02
# The load: at most this many requests, and never longer than the duration plus this.
MAX_REQUESTS = 50_000_000
CLIENT_GRACE_S = 120.0
# Error events kept in the result (counts are always complete).
MAX_EVENTS = 200_000


# --- the load generator: asyncio clients in their own process ------------------------------
#
# Why not wrk (benchmarks/serve uses it): wrk reports socket errors as four totals (connect,
# read, write, timeout) at the end of a run, and its Lua `response()` hook sees statuses only.
# The soak must tell apart the requests cut by a kill -9 (on that worker's connections, at
# that moment) from those cut by the final SIGTERM and from real failures, and must count
# resets, closes and refusals each. So each request here is accounted for with its time, its
# outcome and the worker its connection reached: one coroutine per connection, one request in
# flight on it at a time (as wrk does), and on a new endpoint connection a GET / first, whose
# answer names the worker's pid (a TCP connection stays with the process that accepted it).
# HTTP/1.1 is written and read by hand over asyncio streams on uvloop: the servers always send
# Content-Length, and aiohttp's pool would hide which connection a request went on. It runs in
# a process of its own so that its CPU is not the orchestrator's. On this 2-core machine,
# sharing it with the servers, it kept ~9.6k requests/s going at 16 connections (quick runs):
# not the servers' limit (wrk gets 35k/s from the endpoint alone), but steady, and the soak is
# about errors and memory, not speed.


@dataclass(frozen=True)
class Lane:
    """Half of the load: `connections` clients POSTing `bodies` in turn to one server."""

    name: str
    port: int
    path: str
    bodies: list[str]
    connections: int
    probe: bool  # GET / on each new connection: the endpoint names the worker that took it


class ProtocolError(Exception):
    pass


def _request(lane: Lane, body: bytes) -> bytes:
    return (
        f"POST {lane.path} HTTP/1.1\r\nHost: 127.0.0.1:{lane.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes, bool]:
    """One request and its response: (status, body, connection kept alive)."""
    writer.write(request)
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    if not head.startswith(b"http/1.1 "):
        raise ProtocolError(head[:40].decode("latin-1"))
    status = int(head[9:12])
    start = head.find(b"\r\ncontent-length:")
    if start < 0:
        raise ProtocolError("no content-length")
    length = int(head[start + 17 : head.index(b"\r\n", start + 2)])
    body = await reader.readexactly(length)
    return status, body, b"\r\nconnection: close" not in head


def _kind(err: BaseException) -> str:
    """What a client saw, in the words of the report."""
    if isinstance(err, ConnectionRefusedError):
        return "refused"
    if isinstance(err, ConnectionResetError):
        return "reset"
    if isinstance(err, BrokenPipeError):
        return "broken_pipe"
    if isinstance(err, asyncio.IncompleteReadError):
        return "closed"  # the server closed the connection without (all of) an answer
    if isinstance(err, TimeoutError):
        return "timeout"
    if isinstance(err, ProtocolError | ValueError | KeyError | asyncio.LimitOverrunError):
        return "protocol"
    if isinstance(err, OSError) and err.errno is not None:
        import errno

        return f"oserror_{errno.errorcode.get(err.errno, err.errno)}"
    return type(err).__name__


class Tally:
    """The client side's record: counts per lane and second, and every error as an event."""

    def __init__(self, lanes: list[Lane]) -> None:
        self.t0 = time.monotonic()
        self.sent = Counter[str]()
        self.ok = Counter[str]()
        self.per_second: dict[str, list[int]] = {lane.name: [] for lane in lanes}
        # (t, lane, kind, phase, worker pid or None, request started at t)
        self.errors: list[tuple[float, str, str, str, int | None, float]] = []
        self.dropped = 0
        self.kinds = Counter[str]()  # "lane kind": complete even when events are dropped
        # [opened at, lane, worker pid or None, closed at or None]
        self.connections: list[list[Any]] = []
        self.clean_closes: list[tuple[float, str]] = []  # answers with Connection: close
        self.in_flight = Counter[str]()

    def served(self, lane: str, now: float) -> None:
        self.ok[lane] += 1
        second = int(now - self.t0)
        counts = self.per_second[lane]
        while len(counts) <= second:
            counts.append(0)
        counts[second] += 1

    def error(self, lane: str, kind: str, phase: str, pid: int | None, started: float) -> None:
        self.kinds[f"{lane} {kind}"] += 1
        if len(self.errors) < MAX_EVENTS:
            self.errors.append((time.monotonic(), lane, kind, phase, pid, started))
        else:
            self.dropped += 1


async def _client(lane: Lane, index: int, load: Tally, stop: asyncio.Event) -> None:
    requests = [_request(lane, b.encode()) for b in lane.bodies]
    probe = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{lane.port}\r\n\r\n".encode()
    turn = index
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                reader, writer = await asyncio.open_connection("127.0.0.1", lane.port)
        except (OSError, TimeoutError) as err:
            load.error(lane.name, _kind(err), "connect", None, started)
            await asyncio.sleep(0.05)  # a server that is gone is not hammered
            continue
        pid: int | None = None
        connection: list[Any] = []
        phase = "probe"
        keep = True
        try:
            if lane.probe:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    status, body, keep = await _exchange(reader, writer, probe)
                if status == 200:
                    pid = int(json.loads(body)["pid"])
            connection = [time.monotonic(), lane.name, pid, None]
            load.connections.append(connection)
            phase = "request"
            while keep and not stop.is_set() and sum(load.sent.values()) < MAX_REQUESTS:
                started = time.monotonic()
                load.sent[lane.name] += 1
                load.in_flight[lane.name] += 1
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        status, body, keep = await _exchange(
                            reader, writer, requests[turn % len(requests)]
                        )
                finally:
                    load.in_flight[lane.name] -= 1
                turn += 1
                if status == 200:
                    load.served(lane.name, time.monotonic())
                else:
                    load.error(lane.name, f"http_{status}", phase, pid, started)
                if not keep:
                    load.clean_closes.append((time.monotonic(), lane.name))
        except (OSError, TimeoutError, ProtocolError, ValueError, KeyError,
                asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:  # fmt: skip
            load.error(lane.name, _kind(err), phase, pid, started)
        finally:
            writer.close()
            if connection:
                connection[3] = time.monotonic()


async def _run_load(lanes: list[Lane], seconds: float, out: Path) -> None:
    load = Tally(lanes)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def wait_for_stop() -> None:  # the orchestrator writes a line (or dies: EOF) to stop us
        sys.stdin.readline()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_stop, daemon=True).start()
    print(json.dumps({"t0": load.t0}), flush=True)
    tasks = [
        asyncio.create_task(_client(lane, i, load, stop))
        for lane in lanes
        for i in range(lane.connections)
    ]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    unfinished = dict(load.in_flight)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    result = {
        "t0": load.t0,
        "sent": dict(load.sent),
        "ok": dict(load.ok),
        "unfinished": unfinished,
        "per_second": load.per_second,
        "errors": load.errors,
        "errors_dropped": load.dropped,
        "error_kinds": dict(load.kinds),
        "connections": load.connections,
        "clean_closes": load.clean_closes,
    }
    out.write_text(json.dumps(result))


def client_main(config: Path) -> None:
    import uvloop

    spec = json.loads(config.read_text())
    lanes = [Lane(**lane) for lane in spec["lanes"]]
    uvloop.run(_run_load(lanes, spec["seconds"], Path(spec["out"])))


# --- the processes: pids, memory, children -------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of `pid` (every thread's, as the kernel lists them)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def workers_of(supervisor: int) -> list[int]:
    """The endpoint's worker processes: the supervisor's children (forked from it, so with its
    command line), not a multiprocessing helper (resource tracker, fork server)."""
    pids = []
    for pid in children(supervisor):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"resource_tracker" not in cmdline and b"forkserver" not in cmdline:
            pids.append(pid)
    return sorted(pids)


def rss_kb(pid: int) -> dict[str, int] | None:
    """VmRSS and its anonymous / file-backed parts (the model is a file map), in kB."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            values[name] = int(rest.split()[0])
    return values if "VmRSS" in values else None


class MemorySampler(threading.Thread):
    """VmRSS of the supervisor, its workers and the API every second, for the result file."""

    def __init__(self, supervisor: int, api: int, t0: float) -> None:
        super().__init__(daemon=True)
        self.supervisor, self.api, self.t0 = supervisor, api, t0
        self.samples: list[dict[str, Any]] = []
        self.halt = threading.Event()

    def snapshot(self) -> dict[int, dict[str, Any]]:
        roles = {self.supervisor: "supervisor", self.api: "api"}
        roles |= {pid: "worker" for pid in workers_of(self.supervisor)}
        now = round(time.monotonic() - self.t0, 2)
        found = {}
        for pid, role in roles.items():
            rss = rss_kb(pid)
            if rss is not None:
                found[pid] = {"t": now, "pid": pid, "role": role, **rss}
        return found

    def run(self) -> None:
        while not self.halt.wait(1.0):
            self.samples += self.snapshot().values()


# --- what the orchestrator does ------------------------------------------------------------


@dataclass
class Event:
    t: float  # seconds since the load started
    what: str
    detail: dict[str, Any] = field(default_factory=dict)


def describe(url: str) -> dict[str, Any] | None:
    """GET / on a new connection (the kernel spreads new connections over the workers)."""
    try:
        answer = httpx.get(f"{url}/", timeout=2.0)
    except httpx.HTTPError:
        return None
    return dict(answer.json()) if answer.status_code == 200 else None


def model_sha(url: str) -> str | None:
    for _ in range(20):
        found = describe(url)
        if found and found.get("model"):
            return str(found["model"]["sha256"])
        time.sleep(0.1)
    return None


def await_replacement(
    url: str, endpoint: subprocess.Popen[bytes], killed_at: float, known: set[int], sha: str | None
) -> dict[str, Any]:
    """Poll until a worker pid not in `known` answers GET /; how long from the kill."""
    started: dict[str, Any] = {}
    while time.monotonic() - killed_at < REPLACEMENT_WAIT_S:
        if endpoint.poll() is not None:
            started |= {
                "endpoint_exited": endpoint.returncode,
                "exit_seen_after_s": _since(killed_at),
            }
            break
        if "process_after_s" not in started:
            new = [p for p in workers_of(endpoint.pid) if p not in known]
            if new:
                started |= {"new_pid": new[0], "process_after_s": _since(killed_at)}
        found = describe(url)
        if found is not None and int(found["pid"]) not in known:
            served = found["model"]["sha256"] if found.get("model") else None
            return started | {
                "new_pid": int(found["pid"]),
                "answered_after_s": _since(killed_at),
                "serves_current_model": served == sha,
            }
        time.sleep(PROBE_INTERVAL_S)
    return started | {"answered_after_s": None, "serves_current_model": False}


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def swap(url: str, token: str, ref: Path) -> dict[str, Any]:
    started = time.monotonic()
    try:
        answer = httpx.post(
            f"{url}/admin/model",
            json={"model": str(ref)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=60.0,
        )
    except httpx.HTTPError as err:
        return {"status": None, "error": type(err).__name__, "seconds": _since(started)}
    body = answer.json() if answer.headers.get("content-type") == "application/json" else {}
    return {
        "status": answer.status_code,
        "seconds": _since(started),
        "workers": body.get("workers"),
        "sha256": (body.get("model") or {}).get("sha256"),
        **({} if answer.status_code == 200 else {"error": answer.text[:300]}),
    }


@dataclass
class Plan:
    """When things happen, as fractions of the duration (see the module's docstring)."""

    memory_start: float = 0.10
    first_kill: float = 0.20
    first_swap: float = 0.40
    second_kill: float = 0.60
    second_swap: float = 0.80


def classify(
    errors: list[list[Any]], kills: list[dict[str, Any]], term_at: dict[str, float]
) -> dict[str, dict[str, Counter[str]]]:
    """Each error event, by lane and kind, into: "failures" (the target is none), "killed"
    (in flight on a killed worker's connection, or queued on its listening socket at the
    kill), "cut" (by the final SIGTERM), "refused_after_shutdown" (expected once a server
    stopped listening)."""
    out: dict[str, dict[str, Counter[str]]] = {}
    # A connection the kernel queued on the killed worker's socket fails before it is known
    # whose it is; a probe failing this soon after a kill is counted as the kill's.
    queued_window_s = 1.0
    for t, lane, kind, phase, pid, _started in errors:
        bucket = "failures"
        if lane in term_at and t >= term_at[lane]:
            bucket = "refused_after_shutdown" if kind == "refused" else "cut"
        else:
            for kill in kills:
                if t < kill["at"]:
                    continue
                if pid == kill["pid"] or (
                    pid is None
                    and phase == "probe"
                    and t - kill["at"] < queued_window_s
                    and kind in ("reset", "closed", "broken_pipe")
                ):
                    bucket = "killed"
        out.setdefault(bucket, {}).setdefault(lane, Counter())[kind] += 1
    return out


def memory_table(
    start: dict[int, dict[str, Any]], end: dict[int, dict[str, Any]], slots: list[list[int]]
) -> list[dict[str, Any]]:
    """Start/end VmRSS of the supervisor, the API, and each worker slot (the pids that held it
    in turn: a slot's end is its last pid, set against its first at the start)."""

    def find(samples: dict[int, dict[str, Any]], role: str) -> dict[str, Any] | None:
        return next((s for s in samples.values() if s["role"] == role), None)

    rows = []
    pairs: list[tuple[str, list[int], dict[str, Any] | None, dict[str, Any] | None]] = [
        ("supervisor", [], find(start, "supervisor"), find(end, "supervisor")),
        ("api", [], find(start, "api"), find(end, "api")),
    ]
    for i, pids in enumerate(slots):
        pairs.append((f"worker slot {i}", pids, start.get(pids[0]), end.get(pids[-1])))
    for name, pids, first, last in pairs:
        growth = None
        if first and last:
            growth = 100.0 * (last["VmRSS"] - first["VmRSS"]) / first["VmRSS"]
        rows.append(
            {
                "process": name,
                "pids": pids or [s["pid"] for s in (first, last) if s][:1],
                "start_kb": first and first["VmRSS"],
                "end_kb": last and last["VmRSS"],
                "start_anon_kb": first and first.get("RssAnon"),
                "end_anon_kb": last and last.get("RssAnon"),
                "growth_pct": growth,
            }
        )
    return rows


class LoadProcess:
    """The load generator's process (`--client`): started with its lanes, stopped by a line on
    its stdin (or its time bound), its record read back; never outlives the `with`."""

    def __init__(self, lanes: list[Lane], seconds: float) -> None:
        self.config = OUT / f"client-{os.getpid()}.json"
        self.out = self.config.with_suffix(".out.json")
        self.config.write_text(
            json.dumps(
                {"lanes": [asdict(x) for x in lanes], "seconds": seconds, "out": str(self.out)}
            )
        )
        self.proc = subprocess.Popen(
            [python(), "-m", "benchmarks.soak", "--client", str(self.config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.t0 = float(json.loads(self.proc.stdout.readline())["t0"])  # its clock's zero

    def __enter__(self) -> LoadProcess:
        return self

    def finish(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stop\n")
        self.proc.stdin.flush()
        if self.proc.wait(60) != 0 or not self.out.exists():
            raise SystemExit(f"the load generator failed (exit code {self.proc.returncode})")
        return dict(json.loads(self.out.read_text()))

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.config.unlink(missing_ok=True)
        self.out.unlink(missing_ok=True)


class Soak:
    """What one run does to the servers, and what it saw: events on the load's clock, the kills
    and their replacements, the worker slots (the pids that held each in turn)."""

    def __init__(self, endpoint: Server, api: Server, url: str, token: str, t0: float) -> None:
        self.endpoint, self.api, self.url, self.token, self.t0 = endpoint, api, url, token, t0
        self.events: list[Event] = []
        self.kills: list[dict[str, Any]] = []
        self.slots = [[pid] for pid in workers_of(endpoint.proc.pid)]
        if len(self.slots) != WORKERS:
            raise SystemExit(f"expected {WORKERS} endpoint workers, found {self.slots}")
        self.known = {slot[0] for slot in self.slots}
        self.sha = model_sha(url)  # of the model every worker should serve

    def at(self, fraction: float, duration: float) -> None:
        time.sleep(max(0.0, self.t0 + fraction * duration - time.monotonic()))

    def note(self, what: str, since: float | None = None, **detail: Any) -> None:
        """An event, at `since` (monotonic; default now), printed as it happens."""
        event = Event(round((since or time.monotonic()) - self.t0, 2), what, detail)
        self.events.append(event)
        shown = ", ".join(
            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in detail.items()
        )
        print(f"  t={event.t:7.2f} s  {what}{': ' + shown if shown else ''}", flush=True)

    def alive(self) -> bool:
        if self.endpoint.proc.poll() is None:
            return True
        if not any(e.what == "endpoint exited" for e in self.events):
            self.note("endpoint exited", code=self.endpoint.proc.returncode)
        return False

    def kill_worker(self, slot: list[int]) -> None:
        """kill -9 the slot's current worker; wait for its replacement to answer."""
        if not self.alive():
            return
        victim = slot[-1]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        replaced = await_replacement(self.url, self.endpoint.proc, killed_at, self.known, self.sha)
        self.kills.append({"pid": victim, "at": killed_at, "t": round(killed_at - self.t0, 2)})
        self.kills[-1] |= replaced
        if replaced.get("new_pid"):
            slot.append(int(replaced["new_pid"]))
            self.known.add(int(replaced["new_pid"]))
        self.note(f"kill -9 worker {victim}", killed_at, **replaced)
        self.alive()

    def swap_to(self, ref: Path) -> None:
        if not self.alive():
            self.note(f"swap to {ref.name} skipped: the endpoint is gone")
            return
        started = time.monotonic()
        answer = swap(self.url, self.token, ref)
        if answer["status"] == 200:
            self.sha = answer["sha256"]
        answer["sha256"] = (answer["sha256"] or "")[:12]
        self.note(f"swap to {ref.parent.name}/{ref.name}", started, **answer)

    def stop_servers(self, together: bool) -> tuple[dict[str, float], dict[str, Any]]:
        """SIGTERM, the API first and the endpoint once the API has exited: the API drains its
        requests while the endpoint still answers them, then the endpoint stops under its own
        direct load. Together (as `sentiment up` does), the API answers 503 to what it
        forwards after the endpoint stopped listening: a matter of order, not of graceful
        shutdown, which the target tests. Returns when each was signalled, and how it ended."""
        servers = {"api": self.api, "endpoint": self.endpoint}
        term_at: dict[str, float] = {}
        exits: dict[str, Any] = {}
        for group in [["api", "endpoint"]] if together else [["api"], ["endpoint"]]:
            for name in group:
                term_at[name] = time.monotonic()
                if servers[name].proc.poll() is None:
                    servers[name].proc.send_signal(signal.SIGTERM)
            self.note(f"SIGTERM to the {' and the '.join(group)}", term_at[group[0]])
            for name in group:
                try:
                    code = servers[name].proc.wait(60)
                    exits[name] = {"code": code, "after_s": _since(term_at[name])}
                except subprocess.TimeoutExpired:
                    exits[name] = {"code": None, "after_s": None}
                self.note(f"{name} exited", **exits[name])
        return term_at, exits


def run(duration: float, connections: int, move: bool, together: bool) -> dict[str, Any]:
    OUT.mkdir(parents=True, exist_ok=True)
    first, second = benchmark_model(1), benchmark_model(2)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    staging = OUT / f"staging-{stamp}"
    (staging / "moved").mkdir(parents=True)
    staged = staging / "candidate.bin"
    try:
        os.link(second, staged)  # a second name for the same bytes: cheap, and movable
    except OSError:
        shutil.copyfile(second, staged)
    texts = review_texts(200)
    token = secrets.token_urlsafe(16)
    serve_port, api_port = free_port(), free_port()
    url = f"http://127.0.0.1:{serve_port}"
    env = {"SENTIMENT_LOG_LEVEL": "warning"}
    serve = [python(), "-m", "sentiment", "serve", "--model", str(first), "--port",
             str(serve_port), "--workers", str(WORKERS)]  # fmt: skip
    api_cmd = [python(), "-m", "sentiment", "api", "--endpoint-url", url, "--port",
               str(api_port)]  # fmt: skip
    half = connections // 2
    lanes = [
        Lane("api", api_port, "/sentiment", [json.dumps({"texts": [t]}) for t in texts],
             connections - half, probe=False),
        Lane("endpoint", serve_port, "/invocations",
             [instances_body([t]).decode() for t in texts], half, probe=True),
    ]  # fmt: skip
    plan = Plan()
    try:
        with (
            process(serve, f"{url}/ping", env=env | {"SENTIMENT_ADMIN_TOKEN": token}) as endpoint,
            process(api_cmd, f"http://127.0.0.1:{api_port}/healthz", env=env) as api,
            LoadProcess(lanes, duration + CLIENT_GRACE_S) as client,
        ):
            soak = Soak(endpoint, api, url, token, client.t0)
            memory = MemorySampler(endpoint.proc.pid, api.proc.pid, client.t0)
            memory.start()
            print("timeline:", flush=True)
            soak.at(plan.memory_start, duration)
            start_memory = memory.snapshot()
            soak.note("memory start sample")
            soak.at(plan.first_kill, duration)
            soak.kill_worker(soak.slots[0])
            soak.at(plan.first_swap, duration)
            soak.swap_to(staged)
            if move:  # a deploy moving its staged file away; the workers map the old inode
                staged.rename(staging / "moved" / staged.name)
                soak.note(f"moved {staged.name} to moved/ (the swapped model's file)")
            soak.at(plan.second_kill, duration)
            soak.kill_worker(soak.slots[0])  # the first kill's replacement
            soak.at(plan.second_swap, duration)
            soak.swap_to(first)
            soak.at(1.0, duration)
            soak.alive()
            end_memory = memory.snapshot()
            term_at, exits = soak.stop_servers(together)
            time.sleep(0.5)  # the load runs on: the refusals of servers that are gone
            memory.halt.set()
            load = client.finish()
            logs = {"endpoint": endpoint.log()[-4000:], "api": api.log()[-4000:]}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        "stamp": stamp,
        "duration_s": duration,
        "connections": {lane.name: lane.connections for lane in lanes},
        "models": {"first": first.name, "second": second.name},
        "moved_swapped_file": move,
        "stopped_together": together,
        "t0": client.t0,
        "events": [asdict(e) for e in soak.events],
        "kills": soak.kills,
        "slots": soak.slots,
        "term_at": term_at,
        "exits": exits,
        "load": load,
        "memory_start": {str(k): v for k, v in start_memory.items()},
        "memory_end": {str(k): v for k, v in end_memory.items()},
        "memory_table": memory_table(start_memory, end_memory, soak.slots),
        "memory_samples": memory.samples,
        "logs": logs,
    }


# --- the report ----------------------------------------------------------------------------


def _kinds(counts: dict[str, Counter[str]] | None) -> str:
    if not counts:
        return "none"
    return "; ".join(
        f"{lane}: " + ", ".join(f"{kind} {n:,}" for kind, n in sorted(kinds.items()))
        for lane, kinds in sorted(counts.items())
    )


def connections_on(load: dict[str, Any], at: float) -> dict[int, int]:
    """The endpoint lane's connections open at `at`, per worker pid."""
    found = Counter[int]()
    for opened, lane, pid, closed in load["connections"]:
        if lane == "endpoint" and pid is not None and opened <= at and (closed or at + 1) > at:
            found[pid] += 1
    return dict(found)


def _exit(code: int | None) -> str:
    if code is None:
        return "still running (killed)"
    if code == -signal.SIGTERM:  # uvicorn re-raises the signal once its graceful shutdown is done
        return "SIGTERM re-raised after a graceful shutdown"
    return f"exit code {code}"


def report(result: dict[str, Any]) -> list[tuple[str, str]]:
    """Print the figures; return the targets as (description, PASS / FAIL / N/A)."""
    load, kills = result["load"], result["kills"]
    seconds = result["duration_s"]
    buckets = classify(load["errors"], kills, result["term_at"])
    result["errors_by_bucket"] = {b: {k: dict(v) for k, v in c.items()} for b, c in buckets.items()}
    print("\nrequests served (HTTP 200):")
    for lane in ("api", "endpoint"):
        ok = load["ok"].get(lane, 0)
        print(
            f"  {lane:<9} {ok:>10,}  ({ok / seconds:,.0f}/s over {seconds:g} s; "
            f"{load['sent'].get(lane, 0):,} sent, {load['unfinished'].get(lane, 0)} unanswered "
            f"when the load stopped)"
        )
    print(f"  total     {sum(load['ok'].values()):>10,}")
    print("errors by kind:")
    print(f"  failures:                          {_kinds(buckets.get('failures'))}")
    print(f"  in flight on a killed worker:      {_kinds(buckets.get('killed'))}")
    print(f"  cut by the final SIGTERM:          {_kinds(buckets.get('cut'))}")
    print(f"  refused after shutdown (expected): {_kinds(buckets.get('refused_after_shutdown'))}")
    if load["errors_dropped"]:
        print(
            f"  ({load['errors_dropped']:,} more error events not kept, so unsorted; all errors: "
            f"{load['error_kinds']})"
        )
    closes = Counter(lane for _, lane in load["clean_closes"])
    if closes:
        print(f"  (answers with Connection: close, not errors: {dict(closes)})")
    print(
        "endpoint-lane connections per worker pid: "
        + "; ".join(
            f"at the kill at t={k['t']:.1f} s {connections_on(load, k['at'])}" for k in kills
        )
        + f"; at its SIGTERM {connections_on(load, result['term_at']['endpoint'])}"
    )

    print("memory (VmRSS, MB; a worker slot: its first pid at start, its last at end):")
    growths = []
    for row in result["memory_table"]:
        start, end, growth = row["start_kb"], row["end_kb"], row["growth_pct"]
        print(
            f"  {row['process']:<14} {_mb(start):>8} {_mb(end):>8}  "
            f"{'  gone' if growth is None else f'{growth:+6.1f}%'}  "
            f"(pid {' -> '.join(map(str, row['pids']))})"
        )
        growths.append(growth)

    print("worker replacements (from the kill -9 to the new pid answering GET /):")
    replaced = []
    for kill in kills:
        answered = kill.get("answered_after_s")
        if answered is None:
            why = (
                f"the endpoint exited ({_exit(kill['endpoint_exited'])}) "
                f"{kill['exit_seen_after_s']:.2f} s after the kill"
                if "endpoint_exited" in kill
                else f"none within {REPLACEMENT_WAIT_S:g} s"
            )
            print(f"  t={kill['t']:6.1f} s  worker {kill['pid']}: NOT replaced: {why}")
        else:
            print(
                f"  t={kill['t']:6.1f} s  worker {kill['pid']} -> {kill['new_pid']}: process "
                f"up after {kill.get('process_after_s', float('nan')):.2f} s, answering after "
                f"{answered:.2f} s; serves the current model: {kill['serves_current_model']}"
            )
        replaced.append(
            answered is not None and answered <= REPLACED_WITHIN_S and kill["serves_current_model"]
        )
    print(
        "shutdown: "
        + ", ".join(
            f"{name} {_exit(e['code'])}, {e['after_s']} s after the SIGTERM"
            for name, e in result["exits"].items()
        )
    )
    failures = sum(sum(c.values()) for c in buckets.get("failures", {}).values())
    cut = sum(sum(c.values()) for c in buckets.get("cut", {}).values())
    measured = [g for g in growths if g is not None]
    if any(g > MEMORY_GROWTH_PCT for g in measured):
        memory = "FAIL"
    else:  # a process gone before the end cannot be measured
        memory = "PASS" if len(measured) == len(growths) else "N/A"
    worst = f" (largest {max(measured):+.1f}%)" if measured else ""
    return [
        (
            f"no errors besides the killed workers' requests in flight ({failures:,})",
            _status(failures == 0),
        ),
        (f"no request cut by the final SIGTERM ({cut:,})", _status(cut == 0)),
        (f"memory growth <= {MEMORY_GROWTH_PCT:g}% for every process{worst}", memory),
        (
            f"every worker replaced within {REPLACED_WITHIN_S:g} s, serving the current model",
            _status(bool(replaced) and all(replaced)),
        ),
    ]


def _status(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:,.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="30 s at 16 connections")
    parser.add_argument("--duration", type=float, default=None, help="seconds (default 300)")
    parser.add_argument("--connections", type=int, default=None, help="in all (default 64)")
    parser.add_argument(
        "--no-move",
        action="store_true",
        help="leave the swapped model's file where it is (no replacement then needs a moved file)",
    )
    parser.add_argument(
        "--stop-together",
        action="store_true",
        help="SIGTERM to both servers at once (as `sentiment up` stops them), not the API first",
    )
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client_main(Path(args.client))
        return
    duration = args.duration or (30.0 if args.quick else 300.0)
    connections = args.connections or (16 if args.quick else 64)
    if duration < 20 or connections < 2:
        parser.error("--duration must be >= 20 s and --connections >= 2")
    print(
        f"soak: {duration:g} s, {connections} connections (half through the API, half on the "
        f"endpoint), {WORKERS} endpoint workers; cores {os.cpu_count()}, load {os.getloadavg()}",
        flush=True,
    )
    result = run(duration, connections, move=not args.no_move, together=args.stop_together)
    targets = report(result)
    result["targets"] = [{"target": t, "status": status} for t, status in targets]
    print("targets:")
    for description, status in targets:
        print(f"  {status:<4}  {description}")
    if any(e["code"] not in (0, -signal.SIGTERM) for e in result["exits"].values()):
        print("server logs (last lines):")
        for name, text in result["logs"].items():
            for line in text.strip().splitlines()[-8:]:
                print(f"  {name}: {line}")
    from sentiment.files import atomic_path

    path = OUT / f"soak-{result['stamp']}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=str))
    print(f"result: {path.relative_to(ROOT)}; load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
