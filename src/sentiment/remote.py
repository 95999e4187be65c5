"""Stages on remote storage (s3://): inputs staged in, outputs published whole.

The stages compute on files of this machine (Spark in local mode, the trainer, the report);
when an input or output is an object store, these helpers put a local copy in between, through
the storage seam: an input is downloaded once into the cache (`storage.fetch`); an output is
written into a temporary folder and, once the stage succeeded, uploaded with its manifest or
record last (`storage.publish_tree`). A failed stage publishes nothing under the final names
(a failed training job publishes its record only, which says Failed, as a local job's does).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sentiment import layout
from sentiment.storage import (
    Bucket,
    LocalBucket,
    fetch,
    is_remote,
    open_bucket,
    publish_tree,
    split_file_uri,
)


def stage_input(uri: str | Path, cache_dir: Path) -> Path:
    """A local path for an input given as a local path or a remote URI: an object, or else the
    objects under that prefix, staged as one folder (a dataset folder with train.csv/test.csv)."""
    text = str(uri)
    if not is_remote(text):
        return Path(text)
    parent, key = split_file_uri(text)
    if text.endswith("/") or not parent.exists(key):
        folder = open_bucket(text)
        keys = folder.list()
        if not keys:
            from sentiment.errors import InputNotFound

            raise InputNotFound(f"{text} holds no files.")
        paths = [fetch(folder.url(key), cache_dir) for key in keys]
        # The files of one folder land in one cache folder each; gather them by name.
        target = cache_dir / "remote" / "folders" / _digest(text)
        target.mkdir(parents=True, exist_ok=True)
        for key, path in zip(keys, paths, strict=True):
            link = target / key
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(path)
        return target
    return fetch(text, cache_dir)


@contextlib.contextmanager
def output_folder(uri: str | Path, cache_dir: Path, *, last: tuple[str, ...]) -> Iterator[Path]:
    """The folder a stage writes to: `uri` itself when local; else a temporary folder whose
    files are published to `uri` once the stage succeeded (`last` ones last), then removed."""
    if not is_remote(uri):
        yield Path(str(uri).removeprefix("file://"))
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stage-out-", dir=cache_dir))
    try:
        out = tmp / "out"
        yield out
        publish_tree(out, open_bucket(str(uri)), "", last=last)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def job_bucket(bucket: Bucket, cache_dir: Path) -> Iterator[LocalBucket]:
    """A local bucket for a training job: `bucket` itself when local, else a temporary one
    (publish the job with `publish_job`)."""
    if isinstance(bucket, LocalBucket):
        yield bucket
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stage-jobs-", dir=cache_dir))
    try:
        yield LocalBucket(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish_job(
    local: LocalBucket, bucket: Bucket, name: str, *, inputs: dict[str, str] | None = None
) -> None:
    """Upload job `name` from `local` to `bucket`: the model archive first, the record last (a
    failed job has no archive, so only its record goes). `inputs` (channel -> URI) replaces the
    staged files' local paths in the record with where they came from."""
    record_key = layout.job_record_key(name)
    if local is bucket or not local.exists(record_key):
        return  # nothing to publish: a job stopped before it had a record has no trace here
    record: dict[str, Any] = local.read_json(record_key)
    for channel, uri in (inputs or {}).items():
        if channel in record.get("inputs", {}):
            record["inputs"][channel]["path"] = uri
    local.write_json(record_key, record)
    publish_tree(local.local_path(name), bucket, name, last=(layout.JOB_RECORD,))


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]
