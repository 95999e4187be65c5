"""The dataset reader and downloader, against a real HTTP server on 127.0.0.1.

The server stands in for fast.ai's public bucket (no internet here). It serves a `.tgz` built
from ../shared/data in the published layout and can misbehave on demand: drop the connection
half-way, serve different bytes, answer 404, or never answer.
"""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from conftest import POLARITY, run_cli
from sentiment import datasets as ds
from sentiment.errors import DataError, DownloadError, InputNotFound, UsageError


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """amazon_review_polarity_csv.tgz in fast.ai's layout, made from the shared sample."""
    path = tmp_path_factory.mktemp("archive") / "amazon_review_polarity_csv.tgz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(POLARITY / "train.csv", arcname="amazon_review_polarity_csv/train.csv")
        tar.add(POLARITY / "test.csv", arcname="amazon_review_polarity_csv/test.csv")
        readme = path.parent / "readme.txt"
        readme.write_text("Amazon Review Polarity Dataset (sample)\n")
        tar.add(readme, arcname="amazon_review_polarity_csv/readme.txt")
    return path


@dataclass
class Behaviour:
    mode: str = "ok"  # ok | truncate-once | truncate-always | corrupt | 404 | hang | 503-once
    requests: list[str] = field(default_factory=list)  # the Range header of each request
    failed_once: bool = False


@dataclass
class Server:
    url: str
    behaviour: Behaviour
    data: bytes


@pytest.fixture
def server(archive: Path) -> Iterator[Server]:
    data = archive.read_bytes()
    behaviour = Behaviour()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            behaviour.requests.append(self.headers.get("Range") or "")
            mode = behaviour.mode
            if mode == "404" or not self.path.endswith(archive.name):
                self.send_error(404)
                return
            if mode == "hang":
                time.sleep(5)
                return
            if mode == "503-once" and not behaviour.failed_once:
                behaviour.failed_once = True
                self.send_error(503)
                return
            body = data if mode != "corrupt" else data[:1000] + b"x" * (len(data) - 1000)
            start = 0
            ranged = self.headers.get("Range")
            if ranged:
                start = int(ranged.removeprefix("bytes=").split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            chunk = body[start:]
            if mode == "truncate-always" or (mode == "truncate-once" and not behaviour.failed_once):
                behaviour.failed_once = True
                self.wfile.write(chunk[: len(chunk) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(chunk)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{httpd.server_address[1]}/fast-ai-nlp/", behaviour, data)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _spec(server: Server) -> ds.DatasetSpec:
    """The polarity spec pointed at the local server, with the local archive's size/checksums."""
    return replace(
        ds.get_spec("amazon_review_polarity", mirror=server.url),
        size=len(server.data),
        md5_head=hashlib.md5(server.data[: ds.HEAD_BYTES], usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(server.data).hexdigest(),
    )


def _cache_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def test_download_verifies_and_extracts(server: Server, tmp_path: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    archive = ds.fetch(
        _spec(server), tmp_path, progress=lambda done, total: seen.append((done, total))
    )
    assert archive == tmp_path / "datasets" / "amazon_review_polarity_csv.tgz"
    assert archive.read_bytes() == server.data
    assert seen[-1] == (len(server.data), len(server.data))
    folder = ds.extract_dataset(archive, tmp_path)
    assert (folder / "train.csv").read_bytes() == (POLARITY / "train.csv").read_bytes()
    assert (folder / "test.csv").is_file() and (folder / "readme.txt").is_file()
    # Cached: a second fetch makes no request.
    before = len(server.behaviour.requests)
    assert ds.fetch(_spec(server), tmp_path) == archive
    assert len(server.behaviour.requests) == before


def test_truncated_download_resumes_with_range(server: Server, tmp_path: Path) -> None:
    server.behaviour.mode = "truncate-once"
    archive = ds.fetch(_spec(server), tmp_path, backoff=0)
    assert archive.read_bytes() == server.data
    first, second = server.behaviour.requests
    assert first == ""
    # Resumed from what had arrived (whole chunks of the first half), not from zero.
    offset = int(second.removeprefix("bytes=").removesuffix("-"))
    assert 0 < offset <= len(server.data) // 2


def test_download_that_keeps_failing_leaves_only_a_partial_file(
    server: Server, tmp_path: Path
) -> None:
    server.behaviour.mode = "truncate-always"
    with pytest.raises(DownloadError, match="failed after 2 attempts"):
        ds.fetch(_spec(server), tmp_path, retries=1, backoff=0)
    # Nothing under the archive's name; the partial file is kept to resume from.
    assert _cache_files(tmp_path) == ["datasets/partial/amazon_review_polarity_csv.tgz.part"]
    server.behaviour.mode = "ok"
    assert ds.fetch(_spec(server), tmp_path).read_bytes() == server.data
    assert _cache_files(tmp_path) == ["datasets/amazon_review_polarity_csv.tgz"]


def test_wrong_checksum_is_an_error_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    server.behaviour.mode = "corrupt"
    with pytest.raises(DownloadError, match="SHA-256 is"):
        ds.fetch(replace(_spec(server), md5_head=None), tmp_path)
    assert _cache_files(tmp_path) == []


def test_published_head_checksum_is_checked(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="MD5 of the first MiB"):
        ds.fetch(replace(_spec(server), md5_head="0" * 32), tmp_path)
    assert _cache_files(tmp_path) == []


def test_wrong_size_is_an_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"bytes; .* were expected"):
        ds.fetch(replace(_spec(server), size=len(server.data) + 10), tmp_path, retries=0)
    assert not (tmp_path / "datasets" / "amazon_review_polarity_csv.tgz").exists()


def test_404_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    server.behaviour.mode = "404"
    with pytest.raises(DownloadError, match="HTTP 404"):
        ds.fetch(_spec(server), tmp_path)
    assert not (tmp_path / "datasets" / "amazon_review_polarity_csv.tgz").exists()


def test_503_is_retried(server: Server, tmp_path: Path) -> None:
    server.behaviour.mode = "503-once"
    assert ds.fetch(_spec(server), tmp_path, backoff=0).read_bytes() == server.data
    assert len(server.behaviour.requests) == 2


def test_hanging_server_times_out(server: Server, tmp_path: Path) -> None:
    server.behaviour.mode = "hang"
    started = time.monotonic()
    with pytest.raises(DownloadError, match="ReadTimeout"):
        ds.fetch(_spec(server), tmp_path, timeout=0.3, retries=1, backoff=0)
    assert time.monotonic() - started < 4  # gave up on its own, well before the server answered
    assert not (tmp_path / "datasets" / "amazon_review_polarity_csv.tgz").exists()


def test_resolve_dataset_by_name_downloads_once(server: Server, tmp_path: Path) -> None:
    with pytest.raises(InputNotFound, match="not in the cache"):
        ds.resolve_dataset("amazon_review_polarity", tmp_path, download=False, mirror=server.url)
    spec = _spec(server)
    ds.fetch(spec, tmp_path)
    folder = ds.resolve_dataset(
        "amazon_review_polarity", tmp_path, download=False, mirror=server.url
    )
    assert (folder / "test.csv").read_bytes() == (POLARITY / "test.csv").read_bytes()


def test_resolve_dataset_accepts_folders_files_and_archives(archive: Path, tmp_path: Path) -> None:
    assert ds.resolve_dataset(POLARITY, tmp_path) == POLARITY
    assert ds.resolve_dataset(POLARITY / "test.csv", tmp_path) == POLARITY / "test.csv"
    folder = ds.resolve_dataset(archive, tmp_path)
    assert folder.name == "amazon_review_polarity_csv" and (folder / "train.csv").is_file()
    with pytest.raises(InputNotFound, match="neither a file, a folder, nor a known dataset"):
        ds.resolve_dataset(tmp_path / "missing", tmp_path)
    with pytest.raises(
        UsageError, match="Known datasets: amazon_review_full, amazon_review_polarity"
    ):
        ds.get_spec("imdb")


def test_broken_archives_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(b"not a tar file")
    with pytest.raises(DataError, match=r"not a readable \.tgz"):
        ds.extract_dataset(bad, tmp_path / "cache")
    empty = tmp_path / "empty.tgz"
    with tarfile.open(empty, "w:gz") as tar:
        (tmp_path / "x.txt").write_text("x")
        tar.add(tmp_path / "x.txt", arcname="x.txt")
    with pytest.raises(DataError, match=r"no train\.csv or test\.csv"):
        ds.extract_dataset(empty, tmp_path / "cache")
    assert not list((tmp_path / "cache" / "extracted").iterdir())


def test_cli_download_from_mirror(server: Server, tmp_path: Path) -> None:
    sha = hashlib.sha256(server.data).hexdigest()
    result = run_cli(
        "--cache-dir", str(tmp_path), "datasets", "download", "amazon_review_polarity",
        "--mirror", server.url, "--no-size-check", "--sha256", sha,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip().split(" -> ")[-1])
    assert (folder / "train.csv").is_file()
    # The mirror can also come from the environment; `path` finds the cached dataset.
    result = run_cli("--cache-dir", str(tmp_path), "datasets", "path", "amazon_review_polarity")
    assert result.returncode == 0 and Path(result.stdout.strip()) == folder


def test_cli_download_errors(server: Server, tmp_path: Path) -> None:
    result = run_cli(
        "--cache-dir", str(tmp_path), "datasets", "download", "amazon_review_polarity",
        "--mirror", server.url, "--no-size-check", "--sha256", "0" * 64,
    )  # fmt: skip
    assert result.returncode == 5
    assert result.stderr.startswith("Error: Checksum mismatch") and "Traceback" not in result.stderr
    server.behaviour.mode = "404"
    result = run_cli(
        "--cache-dir",
        str(tmp_path),
        "datasets",
        "download",
        "amazon_review_full",
        env={"SENTIMENT_DATASET_MIRROR": server.url},
    )
    assert result.returncode == 5 and "HTTP 404" in result.stderr
    result = run_cli("--cache-dir", str(tmp_path), "datasets", "download", "imdb")
    assert result.returncode == 2 and "Unknown dataset 'imdb'" in result.stderr
