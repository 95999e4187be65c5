"""The records of jobs in the bucket (a training job's `job.json`, a tuning job's record), read
in one place, so every reader (`sentiment jobs`, `sentiment tuning`, loading a job's model, the
evaluation report) gives the same answer.

A job rewrites its record as it runs and finishes it as Completed, Failed or Stopped. A job
whose process died without a word (SIGKILL, power loss) still says InProgress on disk: its
readers report it as Failed once its process is gone, and leave the file as the job wrote it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from sentiment import layout
from sentiment.errors import DataError, InputNotFound, SentimentError
from sentiment.storage import Bucket


def read_record(bucket: Bucket, key: str, *, name: str, what: str = "training") -> dict[str, Any]:
    """The record at `key` of the `what` job `name`, as its readers report it (`with_liveness`);
    DataError if it is not JSON. The caller checks that it exists."""
    try:
        record: dict[str, Any] = bucket.read_json(key)
    except ValueError as err:
        label = "job" if what == "training" else f"{what} job"
        raise DataError(
            f"The record of {label} {name!r} ({key}) is not valid JSON: {err}."
        ) from None
    return with_liveness(record, what=what)


def read_job(bucket: Bucket, name: str) -> dict[str, Any]:
    """The record of training job `name` (InputNotFound if there is none)."""
    key = layout.job_record_key(name)
    if not is_simple_name(name) or not bucket.exists(key):
        raise InputNotFound(
            f"No training job {name!r} in {bucket.uri}.",
            hint="List jobs with `sentiment jobs list`; train one with `sentiment train`.",
        )
    return read_record(bucket, key, name=name)


def list_jobs(bucket: Bucket) -> list[dict[str, Any]]:
    """Every job record in the bucket, newest first (unreadable records are skipped)."""
    records = []
    for name in bucket.children():
        with contextlib.suppress(ValueError, SentimentError, OSError):
            records.append(read_job(bucket, name))
    return sorted(records, key=lambda r: (r.get("created") or "", r.get("name", "")), reverse=True)


def best_validation_accuracy(record: dict[str, Any]) -> float | None:
    """The highest per-epoch validation accuracy of a record, if it has any."""
    values = [
        e["validation_accuracy"]
        for e in record.get("epochs", [])
        if e.get("validation_accuracy") is not None
    ]
    return max(values) if values else None


def is_simple_name(name: str) -> bool:
    """Whether `name` is one folder of the bucket (no path separator, not `.` or `..`)."""
    return bool(name) and "/" not in name and "\\" not in name and name not in {".", ".."}


def with_liveness(record: dict[str, Any], *, what: str = "training") -> dict[str, Any]:
    """The record as its readers report it: InProgress while its process lives, else Failed
    (the process of a `what` job ended without a word: killed)."""
    if record.get("status") != "InProgress":
        return record
    process = record.get("process") or {}
    pid, host = process.get("pid"), process.get("host")
    if not isinstance(pid, int) or host != socket.gethostname() or alive(pid):
        return record
    return record | {
        "status": "Failed",
        "failure_reason": f"The {what} process (pid {pid}) ended without finishing the job "
        "(killed?)." + (" No model was written." if what == "training" else ""),
    }


def alive(pid: int) -> bool:
    """Whether process `pid` of this machine exists (another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
