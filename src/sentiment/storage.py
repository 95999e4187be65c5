"""The "bucket": where stages put and find artifacts.

A bucket is addressed by keys (`jobs/NAME/output/model.tar.gz`), like S3. The local folder is
the only backend for now; stages go through `Bucket` so another scheme plugs in here alone.
Every write is atomic: a reader sees the old object, the new one, or none, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from sentiment.errors import ConfigError, InputNotFound


class Bucket(Protocol):
    """What stages need from storage."""

    uri: str

    def exists(self, key: str) -> bool: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, source: Path) -> None: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def local_path(self, key: str) -> Path: ...


class LocalBucket:
    """A bucket that is a folder on this machine."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def local_path(self, key: str) -> Path:
        """The file behind `key` (which need not exist yet); keys may not leave the bucket."""
        path = (self.root / key).resolve()
        root = self.root.resolve()
        if path != root and root not in path.parents:
            raise ConfigError(f"Key {key!r} points outside the bucket {self.uri}.")
        return path

    def exists(self, key: str) -> bool:
        return self.local_path(key).exists()

    def read_bytes(self, key: str) -> bytes:
        path = self.local_path(key)
        if not path.is_file():
            raise InputNotFound(f"{key!r} is not in the bucket {self.uri}.")
        return path.read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        atomic_write_bytes(self.local_path(key), data)

    def put_file(self, key: str, source: Path) -> None:
        target = self.local_path(key)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)

    def list(self, prefix: str = "") -> list[str]:
        base = self.local_path(prefix) if prefix else self.root
        if not base.exists():
            return []
        root = self.root.resolve()
        return sorted(
            str(p.resolve().relative_to(root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, dumps_json(value))


def open_bucket(uri: str | Path) -> LocalBucket:
    """The bucket at `uri`: a local folder path or `file://` URL."""
    text = str(uri)
    if "://" in text and not text.startswith("file://"):
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"Bucket scheme {scheme!r} is not supported yet.",
            hint="Use a local folder (e.g. --bucket ./bucket).",
        )
    return LocalBucket(Path(text.removeprefix("file://")).expanduser())


def dumps_json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=False, default=str) + "\n").encode()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers never see a partial file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, dumps_json(value))


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary file beside `path`; on success it replaces `path`, else it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; on success it becomes `path` (replacing an old one).

    A failed run leaves `path` as it was, so no stage can take a half-written output for complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}.", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".old-{path.name}.{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
