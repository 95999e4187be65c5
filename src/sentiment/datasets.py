"""The public Amazon review datasets: where they are, fetching them, and unpacking them.

fast.ai publishes Zhang et al.'s datasets as `.tgz` archives holding one folder with `train.csv`,
`test.csv` and `readme.txt`. A dataset can be given to the pipeline as its name (downloaded once
into the cache), an archive, or a folder/CSV already on disk.

Downloads stream to a `.part` file in the cache's `partial/` folder and move to their final name
only after the size and checksum are verified, so the cache never holds a corrupt archive under
a name the pipeline would use. An interrupted download resumes with an HTTP Range request; a
checksum mismatch deletes the partial file (resuming a wrong file would only repeat the error).

httpx does the HTTP (timeouts, redirects, streaming); rich draws the progress bar. What is
hand-written here is the resume/verify policy, which no well-kept library offers as such for
plain HTTPS (pooch does, but adds a dependency for ~80 lines and has no Range resume).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from sentiment.errors import DataError, DownloadError, InputNotFound, UsageError
from sentiment.files import atomic_directory, sha256_file

# fast.ai's public bucket; `--mirror` / SENTIMENT_DATASET_MIRROR replaces it (e.g. a local copy).
FASTAI_NLP = "https://s3.amazonaws.com/fast-ai-nlp/"
HEAD_BYTES = 1 << 20  # fast.ai's published checksums are MD5 over the first MiB of the archive


@dataclass(frozen=True)
class DatasetSpec:
    """A published dataset archive and how to check it."""

    name: str
    archive: str  # file name under the mirror, e.g. amazon_review_full_csv.tgz
    layout: str  # sentiment.labels.Layout value
    size: int | None = None  # bytes, as published
    md5_head: str | None = None  # fast.ai's check: MD5 of the first MiB
    sha256: str | None = None  # full-file SHA-256 when known (or given with --sha256)
    mirror: str = FASTAI_NLP
    description: str = ""

    @property
    def url(self) -> str:
        return self.mirror.rstrip("/") + "/" + self.archive

    @property
    def folder(self) -> str:
        """The folder the archive unpacks to."""
        return self.archive.removesuffix(".tgz").removesuffix(".tar.gz")


# Sizes and checksums as fast.ai publishes them (fastai/data/checks.txt).
DATASETS: dict[str, DatasetSpec] = {
    "amazon_review_full": DatasetSpec(
        name="amazon_review_full",
        archive="amazon_review_full_csv.tgz",
        layout="full",
        size=643_695_014,
        md5_head="4a1196cf0adaea22f4bc3f592cddde90",
        description="3,000,000 train + 650,000 test reviews, stars 1-5",
    ),
    "amazon_review_polarity": DatasetSpec(
        name="amazon_review_polarity",
        archive="amazon_review_polarity_csv.tgz",
        layout="polarity",
        size=688_339_454,
        md5_head="676f7e5208ec343c8274b4bb085bc938",
        description="3,600,000 train + 400,000 test reviews, 1 = negative, 2 = positive",
    ),
}


def get_spec(name: str, *, mirror: str | None = None) -> DatasetSpec:
    """The spec of a known dataset (`amazon_review_full` or `amazon_review_polarity`)."""
    key = name.removesuffix(".tgz").removesuffix("_csv")
    spec = DATASETS.get(key)
    if spec is None:
        raise UsageError(
            f"Unknown dataset {name!r}.",
            hint=f"Known datasets: {', '.join(DATASETS)} (see `sentiment datasets list`).",
        )
    return replace(spec, mirror=mirror) if mirror else spec


def downloads_dir(cache_dir: Path) -> Path:
    return cache_dir / "datasets"


def cached_archive(spec: DatasetSpec, cache_dir: Path) -> Path:
    return downloads_dir(cache_dir) / spec.archive


def resolve_dataset(
    ref: str | Path, cache_dir: Path, *, download: bool = True, mirror: str | None = None
) -> Path:
    """A folder holding train.csv/test.csv (or a CSV file) for a name, archive, folder or file.

    A dataset name is downloaded into the cache when it is not there yet (unless `download`
    is False, which makes a missing dataset an error).
    """
    path = Path(ref).expanduser()
    if path.exists():
        if path.is_file() and path.name.endswith((".tgz", ".tar.gz")):
            return extract_dataset(path, cache_dir)
        return path
    key = str(ref).removesuffix(".tgz").removesuffix("_csv")
    if key not in DATASETS:
        raise InputNotFound(
            f"{str(ref)!r} is neither a file, a folder, nor a known dataset.",
            hint=f"Give a reviews CSV, a folder with train.csv/test.csv, a .tgz, or one of: {', '.join(DATASETS)}.",
        )
    spec = get_spec(key, mirror=mirror)
    archive = cached_archive(spec, cache_dir)
    if not archive.is_file():
        if not download:
            raise InputNotFound(
                f"Dataset {spec.name} is not in the cache ({archive}).",
                hint=f"Fetch it with `sentiment datasets download {spec.name}`.",
            )
        fetch(spec, cache_dir)
    return extract_dataset(archive, cache_dir)


def extract_dataset(archive: Path, cache_dir: Path) -> Path:
    """Unpack a dataset `.tgz` into the cache (once per archive content) and return its folder.

    Only regular files with safe relative names are extracted; the folder appears atomically.
    """
    if not archive.is_file():
        raise InputNotFound(f"No archive at {archive}.")
    stat = archive.stat()
    stem = archive.name.removesuffix(".tgz").removesuffix(".tar.gz")
    target = cache_dir / "extracted" / f"{stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if not _find_data_folder(target):
        try:
            with atomic_directory(target) as tmp, tarfile.open(archive, "r:gz") as tar:
                members = [
                    m for m in tar.getmembers() if m.isfile() and m.name.endswith((".csv", ".txt"))
                ]
                if not any(Path(m.name).name in {"train.csv", "test.csv"} for m in members):
                    raise DataError(
                        f"{archive} holds no train.csv or test.csv.",
                        hint="Give the dataset archive as fast.ai publishes it (e.g. amazon_review_full_csv.tgz).",
                    )
                tar.extractall(tmp, members=members, filter="data")
        except (tarfile.TarError, EOFError, OSError) as err:
            raise DataError(
                f"{archive} is not a readable .tgz archive ({err}).",
                hint="Download it again (`sentiment datasets download NAME --force`).",
            ) from None
    found = _find_data_folder(target)
    assert found is not None
    return found


def _find_data_folder(root: Path) -> Path | None:
    if not root.is_dir():
        return None
    for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if (candidate / "train.csv").is_file() or (candidate / "test.csv").is_file():
            return candidate
    return None


Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)


def fetch(
    spec: DatasetSpec,
    cache_dir: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> Path:
    """Download a dataset archive into the cache, verified; resumes an earlier partial download."""
    target = cached_archive(spec, cache_dir)
    if target.is_file() and not force:
        return target
    partial = downloads_dir(cache_dir) / "partial" / (spec.archive + ".part")
    partial.parent.mkdir(parents=True, exist_ok=True)
    if force:
        partial.unlink(missing_ok=True)
    attempt = 0
    while True:
        try:
            _download_into(spec.url, partial, size=spec.size, timeout=timeout, progress=progress)
            break
        except _Retryable as err:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"Downloading {spec.url} failed after {attempt} attempts: {err}.",
                    hint=f"Check the network or the mirror; rerun to resume from {partial.stat().st_size if partial.exists() else 0:,} bytes.",
                ) from None
            time.sleep(backoff * 2 ** (attempt - 1))
    try:
        verify(partial, spec)
    except DownloadError:
        partial.unlink(missing_ok=True)
        raise
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(partial, target)
    return target


def verify(path: Path, spec: DatasetSpec) -> None:
    """Check size and checksums; a DownloadError names what does not match."""
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise DownloadError(
            f"{spec.url} gave {size:,} bytes; {spec.size:,} were expected.",
            hint="The download is incomplete or the file changed; it was removed, rerun to fetch it again.",
        )
    if spec.md5_head is not None:
        with open(path, "rb") as fh:
            head = hashlib.md5(fh.read(HEAD_BYTES), usedforsecurity=False).hexdigest()
        if head != spec.md5_head:
            raise DownloadError(
                f"Checksum mismatch for {spec.url}: MD5 of the first MiB is {head}, expected {spec.md5_head}.",
                hint="The file is corrupt or not the published dataset; it was removed, rerun to fetch it again.",
            )
    if spec.sha256 is not None:
        digest = sha256_file(path)
        if digest != spec.sha256.lower():
            raise DownloadError(
                f"Checksum mismatch for {spec.url}: SHA-256 is {digest}, expected {spec.sha256}.",
                hint="The file is corrupt or not the published dataset; it was removed, rerun to fetch it again.",
            )


class _Retryable(Exception):
    """A transient failure: the partial file is kept and the download resumed."""


def _download_into(
    url: str, partial: Path, *, size: int | None, timeout: float, progress: Progress | None
) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have == size:
        return
    if size is not None and have > size:
        partial.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    limits = httpx.Timeout(timeout, connect=min(timeout, 10.0))
    try:
        with httpx.stream(
            "GET", url, headers=headers, timeout=limits, follow_redirects=True
        ) as response:
            if response.status_code == 416 and have:
                # Our partial file is already whole (or longer than the server's): verify decides.
                return
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retryable(f"the server answered {response.status_code}")
            if response.status_code not in (200, 206):
                raise DownloadError(
                    f"Downloading {url} failed: the server answered HTTP {response.status_code}.",
                    hint="Check the dataset name and the mirror URL (--mirror / SENTIMENT_DATASET_MIRROR).",
                )
            mode = "ab" if response.status_code == 206 else "wb"
            done = have if mode == "ab" else 0
            length = response.headers.get("content-length")
            total = done + int(length) if length and length.isdigit() else size
            with open(partial, mode) as out:
                for chunk in response.iter_bytes(1 << 16):
                    out.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
            if total is not None and done < total:
                raise _Retryable(f"the connection closed after {done:,} of {total:,} bytes")
    except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as err:
        raise _Retryable(f"{type(err).__name__}: {err or 'no answer'}") from None
    except httpx.HTTPError as err:
        raise DownloadError(f"Downloading {url} failed: {err}.") from None


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    """A rich progress bar (bytes, speed, time left) as a `Progress` callback."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import (
        Progress as RichProgress,
    )

    with RichProgress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield update
