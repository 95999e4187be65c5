"""The endpoint's reliability under faults (issue 14), each with real `sentiment serve`
processes on 127.0.0.1: crashed and dying workers, broken model files, slow clients, SIGTERM
under keep-alive traffic, leftovers of a killed endpoint, the admin route's errors."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from conftest import KeepPosting, Process, free_port, served, start_endpoint
from sentiment.errors import ModelError
from sentiment.model import load_model_bin
from test_serve import second_model  # noqa: F401 - a fixture

TOKEN = "s3cret"
ADMIN = {"authorization": f"Bearer {TOKEN}"}


def archive(model_bin: Path, target: Path) -> Path:
    """A SageMaker-style model.tar.gz holding `model_bin` as model.bin."""
    with tarfile.open(target, "w:gz") as tar:
        tar.add(model_bin, arcname="model.bin")
    return target


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An endpoint's environment: its own temporary folder (where its shared state lives) and
    model cache, so a test sees and removes exactly its own."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {
        "TMPDIR": str(tmp_path / "tmp"),
        "SENTIMENT_CACHE_DIR": str(tmp_path / "cache"),
        "SENTIMENT_ADMIN_TOKEN": TOKEN,
        **extra,
    }


def broken_copies(model_bin: Path, folder: Path) -> dict[str, Path]:
    """The model cut or tampered with the ways issue 14 found."""
    data = model_bin.read_bytes()
    files = {
        "head": data[:1000],  # `head -c 1000 model.bin`
        "no tail": data[:-4000],  # truncated inside the output matrix
        "trailing bytes": data + b"\0" * 64,
    }
    tampered = bytearray(data)
    struct.pack_into("<i", tampered, 8, 11)  # dim 10 -> 11: the matrices no longer fit it
    files["tampered dim"] = bytes(tampered)
    out = {}
    for name, content in files.items():
        out[name] = folder / f"{name.replace(' ', '-')}.bin"
        out[name].write_bytes(content)
    return out


def test_a_replacement_serves_the_swapped_model_after_its_archive_is_gone(
    tiny_model_dir: Path,
    second_model: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 14.1: swap to b.tar.gz, move b.tar.gz away (and its unpacked copy), kill -9 a
    worker: the replacement serves b (its siblings pinned it), and the endpoint never stops."""
    a = archive(tiny_model_dir / "model.bin", tmp_path / "a.tar.gz")
    b = archive(second_model, tmp_path / "b.tar.gz")
    env = serve_env(tmp_path)
    process, url = start_endpoint(a, tmp_path / "w.log", "--workers", "2", env=env)
    try:
        swap = httpx.post(f"{url}/admin/model", json={"model": str(b)}, headers=ADMIN, timeout=60)
        assert swap.status_code == 200 and swap.json()["workers"]["swapped"] == 2, swap.text
        b_sha = swap.json()["model"]["sha256"]
        b.rename(tmp_path / "moved.tar.gz")
        shutil.rmtree(tmp_path / "cache")
        before = served(url, 16)
        assert set(before.values()) == {b_sha} and len(before) == 2
        victim = next(iter(before))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        now: dict[int, str] = {}
        while time.monotonic() < deadline and len(set(now) - {victim}) < 2:
            assert process.proc.poll() is None, process.output()
            now |= served(url, 4)
            time.sleep(0.1)
        assert len(set(now) - {victim}) == 2 and victim not in now, process.output()
        assert set(now.values()) == {b_sha}
        assert httpx.get(f"{url}/ping").status_code == 200
        assert "could not load" not in process.output()
    finally:
        process.stop()


def test_broken_model_files_are_refused_at_once(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Issue 14.2/14.3: a truncated or tampered .bin is refused by its size and header in
    milliseconds (the fastText library, handed `head -c 1000 model.bin`, allocated gigabytes
    for 20 s and more before failing; a tampered dimension loaded, then failed every
    prediction)."""
    for name, path in broken_copies(tiny_model_dir / "model.bin", tmp_path).items():
        started = time.monotonic()
        with pytest.raises(ModelError, match="not a readable fastText model"):
            load_model_bin(path)
        assert time.monotonic() - started < 1.0, name


def test_quantized_models_still_load_and_broken_ones_do_not(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A whole quantized model (.ftz) goes to the fastText library, which reads those; one cut
    short is refused before it gets there."""
    import fasttext

    ft = fasttext.load_model(str(tiny_model_dir / "model.bin"))
    ft.quantize(input=None, retrain=False)
    ftz = tmp_path / "model.ftz"
    ft.save_model(str(ftz))
    model = load_model_bin(ftz)
    assert model._native is None and model.predict(["great"])[0].labels[0].startswith("__label__")
    cut = tmp_path / "cut.ftz"
    cut.write_bytes(ftz.read_bytes()[:-100])
    with pytest.raises(ModelError, match="ends inside a quantized matrix"):
        load_model_bin(cut)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_model_that_does_not_load_stops_the_start_with_its_error(
    tiny_model_dir: Path, tmp_path: Path, workers: str
) -> None:
    """Issue 14.3: `serve --workers 2` on a tampered model restarted workers 68 times in 20 s
    and never exited; a failure of the first start now exits with the error and its code."""
    broken = broken_copies(tiny_model_dir / "model.bin", tmp_path)["tampered dim"]
    process = Process(
        ["serve", "--model", str(broken), "--port", str(free_port()), "--workers", workers],
        tmp_path / "start.log",
        env=serve_env(tmp_path),
    )
    try:
        code = process.proc.wait(timeout=60)
    finally:
        process.stop()
    out = process.output()
    assert code == ModelError.exit_code, out
    assert "Error: " in out and "do not have the shapes its header gives" in out
    assert "Traceback" not in out and out.count("starting another") == 0


def test_swaps_to_broken_models_are_422_and_keep_the_old_one(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 14.2/14.3/14.10: a swap to a broken model, a missing path, a folder, a file that
    is no model, a 5,000-character path or one holding a NUL byte: the same 422 (naming only
    what the operator sent), fast, and the endpoint keeps its model."""
    broken = broken_copies(tiny_model_dir / "model.bin", tmp_path)
    not_a_model = tmp_path / "notes.bin"
    not_a_model.write_text("hello")
    process, url = start_endpoint(
        tiny_model_dir / "model.bin", tmp_path / "swap.log", env=serve_env(tmp_path)
    )
    try:
        before = httpx.get(f"{url}/").json()["model"]["sha256"]
        refs = [str(p) for p in broken.values()]
        refs += [str(tmp_path / "absent.bin"), str(tmp_path), str(not_a_model), "no-such-job"]
        refs += ["x" * 5000, "a\0b"]
        bodies = []
        for ref in refs:
            started = time.monotonic()
            answer = httpx.post(f"{url}/admin/model", json={"model": ref}, headers=ADMIN)
            assert answer.status_code == 422, (ref[:50], answer.text)
            assert time.monotonic() - started < 2.0
            body = answer.json()
            shown = ref if len(ref) <= 200 else ref[:200] + "..."
            assert body["error"] == "bad_model"
            bodies.append(body["message"].replace(repr(shown), "REF"))
        # One message for all: nothing tells a missing path from an unreadable or other file.
        assert len(set(bodies)) == 1, set(bodies)
        assert str(tmp_path) not in bodies[0]
        assert httpx.get(f"{url}/").json()["model"]["sha256"] == before
        assert httpx.post(f"{url}/invocations", json={"instances": ["good"]}).status_code == 200
        # A body beyond what a swap needs is refused before it is read whole.
        huge = httpx.post(f"{url}/admin/model", content=b"x" * 100_000, headers=ADMIN)
        assert huge.status_code == 413
        wrong = httpx.post(
            f"{url}/admin/model", json={"model": "x"}, headers={"authorization": "Bearer s3cres"}
        )
        assert wrong.status_code == 403
        unicode = httpx.post(
            f"{url}/admin/model",
            json={"model": "x"},
            headers={"authorization": "Bearer s3cr\u00e9t".encode()},
        )
        assert unicode.status_code == 403
    finally:
        process.stop()


def test_a_worker_that_keeps_dying_is_restarted_with_growing_delays(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 14.3: once the endpoint has served, a worker that cannot start again never stops
    the others, and is not restarted in a tight loop (0.5 s, then doubling)."""
    model = tmp_path / "model.bin"
    shutil.copyfile(tiny_model_dir / "model.bin", model)
    env = serve_env(tmp_path)
    process, url = start_endpoint(model, tmp_path / "dying.log", "--workers", "2", env=env)
    try:
        pids = served(url, 16)
        assert len(pids) == 2
        # Make every way to load the model fail: the file and the endpoint's pinned copies.
        model.unlink()
        for pinned in (tmp_path / "tmp").glob("sentiment-serve-*/models/*"):
            shutil.rmtree(pinned)
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        time.sleep(8)
        log = process.output()
        assert process.proc.poll() is None, log
        survivor = (set(pids) - {victim}).pop()
        for _ in range(5):  # the other worker still answers
            assert set(served(url, 1)) <= {survivor}
        assert httpx.get(f"{url}/ping").status_code == 200
        failures = log.count("could not load the model")
        assert 2 <= failures <= 6, log
        assert "starting another in 0.5s" in log and "starting another in 1.0s" in log, log
    finally:
        process.stop()


def _slow_send(port: int, chunks: list[bytes], pause: float) -> tuple[bytes, float]:
    """Send `chunks` with `pause` s between them (until the server closes); returns what the
    server answered and when (seconds after the first byte) it closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:
                break
            time.sleep(pause)
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            answer += data
        return answer, time.monotonic() - started


def _check_slow_clients_are_cut_off(port: int, path: str, good: dict[str, object]) -> None:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    results: dict[str, tuple[bytes, float]] = {}

    def run(name: str, chunks: list[bytes], pause: float) -> None:
        results[name] = _slow_send(port, chunks, pause)

    body = b'{"instances": ["good"]}' * 40
    slow = {  # (chunks, pause): each would take 10 s or more
        "headers byte by byte": ([bytes([c]) for c in head.encode()], 0.2),
        "body byte by byte": (
            [f"{head}Content-Length: {len(body)}\r\n\r\n".encode()] + [b"x"] * 50,
            0.2,
        ),
        "nothing at all": ([b""], 0.0),
    }
    threads = [threading.Thread(target=run, args=(n, c, p)) for n, (c, p) in slow.items()]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:  # others are served
        for _ in range(5):
            assert client.post(path, json=good).status_code == 200
    for thread in threads:
        thread.join(timeout=30)
    for name, (answer, seconds) in results.items():
        assert seconds < 4.0, (name, seconds)  # the limits are 1 s (+ the 0.25 s check)
        assert answer.startswith(b"HTTP/1.1 408 ") and b"connection: close" in answer, name


def test_slow_clients_are_cut_off_by_the_endpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Issue 14.6: a client sending its headers or body byte by byte (slowloris), or nothing,
    gets a 408 once the header or body deadline passes, while other clients are served."""
    env = serve_env(tmp_path, SENTIMENT_HTTP_HEADER_TIMEOUT="1", SENTIMENT_HTTP_BODY_TIMEOUT="1")
    process, url = start_endpoint(
        tiny_model_dir / "model.bin", tmp_path / "slow.log", "--workers", "2", env=env
    )
    try:
        port = int(url.rsplit(":", 1)[1])
        _check_slow_clients_are_cut_off(port, "/invocations", {"instances": ["good"]})
    finally:
        process.stop()


def test_slow_clients_are_cut_off_by_the_api(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Issue 14.6, the API's part: the same deadlines (one definition: server_options)."""
    port = free_port()
    env = serve_env(tmp_path, SENTIMENT_HTTP_HEADER_TIMEOUT="1", SENTIMENT_HTTP_BODY_TIMEOUT="1")
    process = Process(
        ["api", "--model", str(tiny_model_dir / "model.bin"), "--port", str(port)],
        tmp_path / "api.log",
        env=env,
    )
    try:
        process.wait_for(f"http://127.0.0.1:{port}/healthz")
        _check_slow_clients_are_cut_off(port, "/sentiment", {"texts": ["good"]})
    finally:
        process.stop()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_under_keep_alive_traffic_resets_no_connection(
    tiny_model_dir: Path, tmp_path: Path, workers: str
) -> None:
    """Issue 14.7: 32 clients, each on its own keep-alive connection, post as fast as they can;
    SIGTERM mid-traffic. Every request sent on an open connection is answered (the last ones
    with `Connection: close`); after that a client can only find the port closed."""
    process, url = start_endpoint(
        tiny_model_dir / "model.bin",
        tmp_path / "term.log",
        "--workers",
        workers,
        env=serve_env(tmp_path),
    )
    posting = KeepPosting(
        url,
        "/invocations",
        {"instances": ["good stuff"]},
        32,
        lambda r: f"{r.status_code} {r.headers.get('connection', '')}".strip(),
    ).start()
    try:
        time.sleep(1.5)
        process.proc.send_signal(signal.SIGTERM)
        process.proc.wait(timeout=60)
        time.sleep(0.3)
    finally:
        outcomes = posting.stop()
        process.stop()
    bad = [o for o in outcomes if o not in ("200", "200 close", "refused")]
    assert outcomes.count("200") > 100
    assert not bad, (len(bad), sorted(set(bad))[:5])
    assert outcomes.count("200 close") >= 1  # the last answers told clients to close


def test_a_killed_endpoints_shared_folder_is_removed_at_the_next_start(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 14.8: `kill -9` of the endpoint leaves its shared folder behind; the next endpoint
    to start removes it (its owner is dead), not the folder of one still running."""
    env = serve_env(tmp_path)
    tmp = tmp_path / "tmp"
    model = tiny_model_dir / "model.bin"
    first, _ = start_endpoint(model, tmp_path / "first.log", "--workers", "2", env=env)
    try:
        [left] = list(tmp.glob("sentiment-serve-*"))
        assert (left / "owner.pid").read_text() == str(first.proc.pid)
        first.proc.kill()
    finally:
        first.stop()
    alive = tmp / "sentiment-serve-alive"  # another endpoint's, still running (this process)
    alive.mkdir()
    (alive / "owner.pid").write_text(str(os.getpid()))
    unknown = tmp / "sentiment-serve-unknown"  # no owner: not ours to judge
    unknown.mkdir()
    time.sleep(1.5)  # the orphaned workers stop (they check their parent every second)
    assert left.is_dir()
    second, _ = start_endpoint(model, tmp_path / "second.log", "--workers", "2", env=env)
    try:
        folders = set(tmp.glob("sentiment-serve-*"))
        assert left not in folders and {alive, unknown} <= folders and len(folders) == 3
    finally:
        second.stop()
    assert set(tmp.glob("sentiment-serve-*")) == {alive, unknown}  # a clean stop cleans up


def test_the_largest_body_of_short_texts_stays_within_bounded_memory(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """6 MB (the body limit) of one-letter instances is 1.57M predictions: held as Python
    tuples until encoded, they took the worker to 937 MB; predicted and encoded a chunk at a
    time, under 600 MB (most of it the 94 MB answer and its copies in flight)."""
    import orjson

    process, url = start_endpoint(
        tiny_model_dir / "model.bin", tmp_path / "big.log", env=serve_env(tmp_path)
    )
    try:
        count = (6 * 1024 * 1024 - 20) // 4
        body = b'{"instances":[' + b",".join([b'"a"'] * count) + b"]}"
        answer = httpx.post(
            f"{url}/invocations",
            content=body,
            headers={"content-type": "application/json"},
            timeout=120,
        )
        assert answer.status_code == 200
        items = orjson.loads(answer.content)
        assert len(items) == count and items[0] == items[-1] and set(items[0]) == {"label", "prob"}
        pid = httpx.get(f"{url}/").json()["pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        peak_mb = (
            int(next(ln for ln in status.splitlines() if ln.startswith("VmHWM")).split()[1]) // 1024
        )
        assert peak_mb < 600, peak_mb
    finally:
        process.stop()


def _mapped_models(pid: int) -> list[str]:
    """The model files `pid` maps (one line per mapping in /proc/<pid>/maps)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return [line.split(None, 5)[-1] for line in lines if "model.bin" in line]


class _UvicornFactory(Process):
    """The endpoint as uvicorn's own workers run it (where SO_REUSEPORT is missing): the app
    made by `app_from_environment`, its model loaded at startup by the app's lifespan."""

    def __init__(self, port: int, log: Path, env: dict[str, str]) -> None:
        self.log = log
        self.handle = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "--port", str(port),
             "sentiment.serve.server:app_from_environment"],
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )  # fmt: skip


@pytest.mark.parametrize("workers", ["1", "2", "lifespan"])
def test_a_swapped_out_model_is_unmapped(
    tiny_model_dir: Path,
    second_model: Path,  # noqa: F811
    tmp_path: Path,
    workers: str,
) -> None:
    """Issue 14's soak: after swaps A -> B -> A a worker still mapped its startup A beside the
    current A (+56% RSS): a frame living as long as the server held it (the worker function's,
    the CLI's, the app's lifespan suspended at its `yield`). Now every worker maps exactly the
    model it serves, after each swap."""
    a = tiny_model_dir / "model.bin"
    if workers == "lifespan":
        port = free_port()
        env = serve_env(tmp_path, SENTIMENT_MODEL=str(a))
        process, url = (
            _UvicornFactory(port, tmp_path / "unmap.log", env),
            f"http://127.0.0.1:{port}",
        )
        process.wait_for(f"{url}/ping")
        workers = "1"
    else:
        process, url = start_endpoint(
            a, tmp_path / "unmap.log", "--workers", workers, env=serve_env(tmp_path)
        )
    try:
        pids = served(url, 16)
        assert len(pids) == int(workers)
        for ref in (second_model, a):
            swap = httpx.post(
                f"{url}/admin/model", json={"model": str(ref)}, headers=ADMIN, timeout=60
            )
            assert swap.status_code == 200, swap.text
            for pid in pids:
                mapped = _mapped_models(pid)
                assert len(mapped) == 1 and "(deleted)" not in mapped[0], (ref, pid, mapped)
        assert set(served(url, 16)) == set(pids)  # the same processes throughout
    finally:
        process.stop()


def test_a_killed_worker_is_replaced_within_two_seconds(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 14's target: a worker killed with -9 is replaced by one answering within 2 s. The
    supervisor wakes on the worker's exit and forks the replacement from itself, imports and
    tables done: 0.3-0.7 s here under a load average of 4-5, against 1.2-1.6 s on an idle
    machine (2.2-2.8 s in the soak) when it polled every 0.2 s and spawned an interpreter that
    imported everything. Each of the two workers is killed in turn: each replacement must answer
    within the 2 s target, the faster one within 1 s (which a spawned one never did). The
    precise figures, under load, are benchmarks/soak's."""
    process, url = start_endpoint(
        tiny_model_dir / "model.bin",
        tmp_path / "replace.log",
        "--workers",
        "2",
        env=serve_env(tmp_path),
    )
    try:
        pids = served(url, 16)
        assert len(pids) == 2
        times = []
        for victim in sorted(pids):
            os.kill(victim, signal.SIGKILL)
            killed = time.monotonic()
            replaced = None
            while replaced is None and time.monotonic() - killed < 10:
                with httpx.Client() as client, contextlib.suppress(httpx.HTTPError):
                    pid = client.get(f"{url}/", timeout=2).json()["pid"]
                    if pid not in pids:
                        replaced, pids[pid] = time.monotonic() - killed, ""
                time.sleep(0.01)
            assert replaced is not None, process.output()
            times.append(replaced)
        assert max(times) < 2.0 and min(times) < 1.0, (times, process.output())
        assert process.proc.poll() is None
    finally:
        process.stop()


def _pids_on_one_pool(url: str, seconds: float) -> tuple[set[int], int, int]:
    """The worker pids a one-connection keep-alive client reaches in `seconds` of GET /, how
    many answers said `Connection: close`, and how many requests failed."""
    pids: set[int] = set()
    closes = failures = 0
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(limits=limits, timeout=5) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                answer = client.get(f"{url}/")
            except httpx.HTTPError:
                failures += 1
                continue
            pids.add(answer.json()["pid"])
            closes += answer.headers.get("connection", "") == "close"
            time.sleep(0.01)
    return pids, closes, failures


def test_an_old_keep_alive_connection_is_closed_so_pools_spread_over_workers(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A pool that never idles (the API's) used to keep each connection on the worker it first
    reached: a worker replaced after a crash got none of it. A connection older than
    SENTIMENT_HTTP_CONNECTION_MAX_AGE is closed by its next answer, the client reconnects and
    the kernel picks a worker again; no request fails. With the age off, the one connection
    stays on one worker (what this test would see without the rule)."""
    for max_age, expect_spread in (("0", False), ("0.2", True)):
        env = serve_env(tmp_path, SENTIMENT_HTTP_CONNECTION_MAX_AGE=max_age)
        process, url = start_endpoint(
            tiny_model_dir / "model.bin", tmp_path / f"age-{max_age}.log", "--workers", "2",
            env=env,
        )  # fmt: skip
        try:
            pids, closes, failures = _pids_on_one_pool(url, 4.0)
        finally:
            process.stop()
        assert failures == 0
        if expect_spread:
            # ~20 reconnections, each to either worker: both seen (all on one: p ~ 2e-6).
            assert len(pids) == 2 and closes >= 10, (pids, closes)
        else:
            assert len(pids) == 1 and closes == 0, (pids, closes)
