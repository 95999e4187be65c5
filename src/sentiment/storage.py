"""The "bucket": where stages put and find artifacts.

A bucket is addressed by keys (`jobs/NAME/output/model.tar.gz`), like S3. Two backends sit
behind one protocol, `Bucket`: a local folder (`LocalBucket`) and S3 (`sentiment.aws.s3.S3Bucket`,
for `s3://` URIs; boto3 is imported only when one is used). `open_bucket(uri)` picks the backend.
Every write is atomic (`sentiment.files`): a reader sees the old object, the new one, or none,
never half of one.
A set of files (a prepared folder, a training job) is published with its manifest or record
last, so whoever finds the manifest finds every file it lists.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar, runtime_checkable

from sentiment.aws.s3 import SCHEMES, S3Bucket
from sentiment.errors import ConfigError, InputNotFound
from sentiment.files import (
    TMP_PREFIX,
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    dumps_json,
)

T = TypeVar("T")


@runtime_checkable
class Bucket(Protocol):
    """What stages need from storage."""

    uri: str

    def exists(self, key: str) -> bool: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def read_json(self, key: str) -> Any: ...
    def write_json(self, key: str, value: Any) -> None: ...
    def put_file(self, key: str, source: Path) -> None: ...
    def get_file(self, key: str, target: Path) -> Path: ...
    def delete(self, key: str) -> None: ...
    # Every object under `prefix` (a "folder"), which need not exist.
    def delete_tree(self, prefix: str) -> None: ...
    # Streams, for objects too large to hold in memory: `open_read` reads one (lines can be
    # iterated), `open_write` writes one that appears whole when the block ends without error.
    def open_read(self, key: str) -> BinaryIO: ...
    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]: ...
    def children(self, prefix: str = "") -> list[str]: ...
    def url(self, key: str) -> str: ...
    # The file behind `key` on this machine; a remote bucket raises ConfigError (stages that
    # need files stage them through `sentiment.remote`).
    def local_path(self, key: str) -> Path: ...
    # Last: in a class body, a method named `list` shadows the builtin in later annotations.
    def list(self, prefix: str = "") -> list[str]: ...


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

    def get_file(self, key: str, target: Path) -> Path:
        source = self.local_path(key)
        if not source.is_file():
            raise InputNotFound(f"{key!r} is not in the bucket {self.uri}.")
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        return target

    def delete(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)

    def delete_tree(self, prefix: str) -> None:
        path = self.local_path(prefix)
        if path == self.root.resolve():
            raise ConfigError(f"Refusing to delete the whole bucket {self.uri}.")
        shutil.rmtree(path, ignore_errors=True)

    def open_read(self, key: str) -> BinaryIO:
        path = self.local_path(key)
        if not path.is_file():
            raise InputNotFound(f"{key!r} is not in the bucket {self.uri}.")
        return open(path, "rb")

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        # Renamed into place, not synced: the large files a stage writes inside its temporary
        # folder (atomic_directory) need no fsync each (a prepared train.txt is ~1 GB).
        with atomic_path(self.local_path(key), sync=False) as tmp, open(tmp, "wb") as fh:
            yield fh

    def url(self, key: str) -> str:
        return str(self.local_path(key))

    def children(self, prefix: str = "") -> list[str]:
        base = self.local_path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, dumps_json(value))

    def list(self, prefix: str = "") -> list[str]:
        base = self.local_path(prefix) if prefix else self.root
        if not base.exists():
            return []
        root = self.root.resolve()
        return sorted(
            str(p.resolve().relative_to(root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(TMP_PREFIX)
        )


def is_remote(uri: str | Path) -> bool:
    """Whether `uri` names an object store (s3://...) rather than a path on this machine."""
    text = str(uri)
    return "://" in text and not text.startswith("file://")


def open_bucket(uri: str | Path) -> Bucket:
    """The bucket at `uri`: a local folder path, a `file://` URL or `s3://bucket[/prefix]`."""
    text = str(uri)
    if text.startswith(SCHEMES):
        return S3Bucket(text)
    if is_remote(text):
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"Bucket scheme {scheme!r} is not supported.",
            hint="Use a local folder (e.g. --bucket ./bucket) or s3://BUCKET/prefix.",
        )
    return LocalBucket(Path(text.removeprefix("file://")).expanduser())


def split_file_uri(uri: str) -> tuple[Bucket, str]:
    """(the bucket holding the file at `uri`, its key): s3://b/a/f.txt -> (s3://b/a, f.txt)."""
    head, _, name = str(uri).rstrip("/").rpartition("/")
    if not name or not head:
        raise ConfigError(f"{uri!r} names no file.")
    return open_bucket(head), name


def fetch(uri: str | Path, cache_dir: Path) -> Path:
    """A file on this machine with the content at `uri`: a local path as it is, a remote object
    downloaded once into `cache_dir/remote/` (again when its size or ETag changed)."""
    if not is_remote(uri):
        return Path(str(uri).removeprefix("file://")).expanduser()
    bucket, key = split_file_uri(str(uri))
    digest = hashlib.sha256(str(uri).encode()).hexdigest()[:16]
    target = cache_dir / "remote" / digest / key
    stamp = target.with_name(f".{key}.version")
    version = _version(bucket, key)
    if target.is_file() and stamp.is_file() and stamp.read_text() == version:
        return target
    bucket.get_file(key, target)
    atomic_write_bytes(stamp, version.encode())
    return target


def _version(bucket: Bucket, key: str) -> str:
    head = getattr(bucket, "head", None)
    return str(head(key)) if head is not None else ""


def publish_tree(source: Path, bucket: Bucket, prefix: str, *, last: tuple[str, ...]) -> list[str]:
    """Upload every file under `source` to `bucket` under `prefix`, the files named in `last`
    (a manifest, a job record) after all the others; returns the keys written.

    If an upload fails, the keys this call already wrote are deleted again, so a failed publish
    leaves no part of the set under its final names (and never its manifest).
    """
    # Hidden files and folders (temporary files, a job's .scratch) are not part of the set.
    files = sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts)
    )
    order = [p for p in files if p.parent != source or p.name not in last] + [
        p for name in last for p in files if p.name == name and p.parent == source
    ]
    keys = [
        "/".join(filter(None, [prefix.strip("/"), *p.relative_to(source).parts])) for p in order
    ]
    return _put_all(bucket, list(zip(keys, order, strict=True)), bucket.put_file)


def _put_all(
    bucket: Bucket, items: list[tuple[str, T]], put: Callable[[str, T], object]
) -> list[str]:
    """put(key, item) for each (key, item) in order into `bucket`; if one fails, delete the
    keys already put (best effort) and raise: a set lands whole or not at all."""
    written: list[str] = []
    try:
        for key, item in items:
            put(key, item)
            written.append(key)
    except BaseException:
        for key in reversed(written):
            with contextlib.suppress(Exception):
                bucket.delete(key)
        raise
    return written


@contextlib.contextmanager
def staged_tree(uri: str | Path, *, last: tuple[str, ...]) -> Iterator[Bucket]:
    """A temporary bucket beside `uri` for a stage to write a set of files into; when the block
    ends without error the set becomes `uri`, else it is dropped and `uri` is left as it was.

    A local folder is replaced whole by a rename (`atomic_directory`). S3 has no rename: the
    set goes under a temporary prefix beside `uri` (`.tmp-NAME.<random>/`), then each object
    is copied to its final key (S3 shows a copy whole or not at all) with the files named in
    `last` (the manifest) deleted first and copied last, so that whoever finds the manifest
    finds every file it lists; keys of an earlier set that this one lacks are deleted after.
    """
    if not is_remote(uri):
        with atomic_directory(Path(str(uri).removeprefix("file://")).expanduser()) as tmp:
            yield LocalBucket(tmp)
        return

    final = open_bucket(uri)
    assert isinstance(final, S3Bucket)
    parent, _, name = final.prefix.rpartition("/")
    if not name:
        raise ConfigError(f"{final.uri} names a whole bucket.", hint="Write s3://BUCKET/prefix.")
    stage = S3Bucket(f"s3://{final.name}/" + "/".join(filter(None, [parent, _tmp_name(name)])))
    try:
        yield stage
        keys = [
            k for k in stage.list() if not k.endswith("/")
        ]  # not the connector's folder markers
        old = set(final.list())
        for key in last:
            if key in old:
                final.delete(key)
        order = [k for k in keys if k not in last] + [k for k in last if k in keys]
        _put_all(
            final, [(key, key) for key in order], lambda key, src: final.copy_from(stage, src, key)
        )
        for key in sorted(old - set(keys)):
            final.delete(key)
    finally:
        stage.delete_tree("")


def move_tree(source: Bucket, prefix: str, target: str | Path) -> None:
    """Move the objects under `prefix` of `source` to the folder or S3 prefix `target`,
    replacing what was there (both local, or both in S3)."""
    if isinstance(source, LocalBucket):
        path = Path(str(target))
        shutil.rmtree(path, ignore_errors=True)
        os.replace(source.local_path(prefix), path)
        return

    destination = open_bucket(target)
    assert isinstance(source, S3Bucket) and isinstance(destination, S3Bucket)
    destination.delete_tree("")
    start = len(prefix.strip("/")) + 1
    for key in source.list(prefix):
        destination.copy_from(source, key, key[start:])
    source.delete_tree(prefix)


def _tmp_name(name: str) -> str:
    return f"{TMP_PREFIX}{name}.{uuid.uuid4().hex[:12]}"
