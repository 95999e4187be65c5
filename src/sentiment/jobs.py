"""Training jobs: BlazingText's supervised training job, run here, recorded in the bucket.

A job reads a `train` channel (and a `validation` channel, required with early stopping, as in
BlazingText), trains epoch by epoch, and writes, like SageMaker:

    BUCKET/NAME/job.json               status, hyperparameters, per-epoch metrics, timings, inputs
    BUCKET/NAME/output/model.tar.gz    model.bin (fastText format) + preprocessing.json

The record is rewritten atomically after every epoch, so `sentiment jobs describe` shows a
running job's progress. The archive appears only when the job completes: a stopped or failed
job never leaves a model that looks complete.

Metric lines are printed in BlazingText's log format (`Validation accuracy: 0.922196`,
`#train_accuracy: 0.9888`, `#validation_accuracy: 0.9228`) so scrapers written for SageMaker's
logs (metric definitions are regular expressions over them) work unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import signal
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sentiment import hyperparams, layout
from sentiment.config import Settings
from sentiment.errors import InputNotFound, Interrupted, SentimentError, UsageError
from sentiment.storage import LocalBucket, atomic_path
from sentiment.text import Cleaning

NAME_PREFIX = "blazingtext"


class JobStopped(Interrupted):
    """The job was stopped by Ctrl-C or SIGTERM."""


def default_job_name(now: dt.datetime | None = None) -> str:
    """`blazingtext-YYYY-MM-DD-HH-MM-SS` (UTC), as SageMaker's console names jobs."""
    moment = now or dt.datetime.now(dt.UTC)
    return f"{NAME_PREFIX}-{moment:%Y-%m-%d-%H-%M-%S}"


def unique_job_name(bucket: LocalBucket, name: str | None) -> str:
    """The given name (which must be new), or a new default name."""
    if name:
        check_job_name(name)
        if bucket.exists(layout.job_record_key(name)):
            raise UsageError(
                f"A training job named {name!r} already exists in {bucket.uri}.",
                hint="Job names are unique, as in SageMaker: choose another --job-name.",
            )
        return name
    base = default_job_name()
    candidate, n = base, 1
    while bucket.exists(layout.job_record_key(candidate)):
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def check_job_name(name: str) -> None:
    """SageMaker's rule: 1-63 characters, letters, digits and hyphens, not starting with a hyphen."""
    ok = 0 < len(name) <= 63 and name[0].isalnum() and all(c.isalnum() or c == "-" for c in name)
    if not ok or not name.isascii():
        raise UsageError(
            f"Invalid job name {name!r}.",
            hint="Use 1-63 letters, digits and hyphens, starting with a letter or digit.",
        )


def read_job(bucket: LocalBucket, name: str) -> dict[str, Any]:
    key = layout.job_record_key(name)
    if not bucket.exists(key):
        raise InputNotFound(
            f"No training job {name!r} in {bucket.uri}.",
            hint="List jobs with `sentiment jobs list`.",
        )
    record: dict[str, Any] = bucket.read_json(key)
    return record


def list_jobs(bucket: LocalBucket) -> list[dict[str, Any]]:
    """Every job record in the bucket, newest first."""
    records = []
    for key in bucket.list():
        parts = key.split("/")
        if len(parts) == 2 and parts[1] == layout.JOB_RECORD:
            with contextlib.suppress(ValueError, SentimentError):
                records.append(bucket.read_json(key))
    return sorted(records, key=lambda r: r.get("created", ""), reverse=True)


def preprocessing_for(train: Path) -> dict[str, Any] | None:
    """How the training text was made, from the prepared folder's manifest (None if unknown)."""
    manifest = train.parent / layout.MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text())
    except ValueError:
        return None
    known = {f.name for f in fields(Cleaning)}
    cleaning = {k: v for k, v in data.get("cleaning", {}).items() if k in known}
    rows = {k: v for k, v in data.get("cleaning", {}).items() if k not in known}
    return {
        "cleaning": cleaning,
        "policy": data.get("policy"),
        "rows": rows,
        "labels": data.get("labels"),
    }


def run_training(
    *,
    train: Path,
    validation: Path | None,
    bucket: LocalBucket,
    job_name: str | None,
    hyperparameters: dict[str, Any],
    settings: Settings,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run a training job to its end and return its record (raises if it failed or stopped)."""
    console = console or Console(stderr=True)
    values = hyperparameters_for(hyperparameters, settings)
    if not train.is_file():
        raise InputNotFound(
            f"No training file at {train}.", hint="Make one with `sentiment prepare`."
        )
    if values["early_stopping"] and validation is None:
        raise UsageError(
            "early_stopping=True needs a validation channel.",
            hint="Give --validation FILE (prepare writes validation.txt), or set early_stopping=False.",
        )
    if validation is not None and not validation.is_file():
        raise InputNotFound(
            f"No validation file at {validation}.", hint="Make one with `sentiment prepare`."
        )
    name = unique_job_name(bucket, job_name)
    job = _Job(name, bucket, console)
    job.record.update(
        hyperparameters=hyperparams.as_strings(
            {k: v for k, v in values.items() if not hyperparams.BY_NAME[k].extra}
        ),
        extras={k: v for k, v in values.items() if hyperparams.BY_NAME[k].extra},
        inputs={"train": _describe(train)}
        | ({"validation": _describe(validation)} if validation else {}),
    )
    job.save()
    with _stop_on_sigterm():
        try:
            _train(job, train, validation, values)
        except (KeyboardInterrupt, JobStopped):
            job.finish("Stopped", "Stopped by the user (Ctrl-C or SIGTERM) before completion.")
            raise JobStopped(f"Training job {name} stopped; no model was written.") from None
        except SentimentError as err:
            job.finish("Failed", err.render())
            raise
        except Exception as err:  # the record must say Failed whatever happened
            job.finish("Failed", f"{type(err).__name__}: {err}")
            raise
    return job.record


def hyperparameters_for(given: dict[str, Any], settings: Settings) -> dict[str, Any]:
    values = hyperparams.resolve(given)
    if "threads" not in given and settings.threads:
        values["threads"] = settings.threads
    return values


class _Job:
    def __init__(self, name: str, bucket: LocalBucket, console: Console) -> None:
        self.name = name
        self.bucket = bucket
        self.console = console
        self.started = time.monotonic()
        now = _now()
        self.record: dict[str, Any] = {
            "name": name,
            "status": "InProgress",
            "failure_reason": None,
            "created": now,
            "started": now,
            "ended": None,
            "seconds": None,
            "algorithm": "blazingtext-compatible (sentiment)",
            "epochs": [],
            "best_epoch": None,
            "stopped_early": False,
            "final_metrics": {},
        }

    def save(self) -> None:
        self.record["seconds"] = round(time.monotonic() - self.started, 3)
        self.bucket.write_json(layout.job_record_key(self.name), self.record)

    def finish(self, status: str, reason: str | None = None) -> None:
        self.record.update(status=status, failure_reason=reason, ended=_now())
        self.save()

    def log(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _train(job: _Job, train: Path, validation: Path | None, values: dict[str, Any]) -> None:
    from sentiment.engine import Trainer

    params = hyperparams.engine_params(values)
    trainer = Trainer(params)
    job.log(
        f"Running single machine CPU BlazingText-compatible training using supervised mode ({trainer.threads} threads)."
    )
    job.log(f"Processing {train} . File size: {train.stat().st_size / 1e6:.0f} MB")
    trainer.build_vocab(train)
    job.log(f"Read {trainer.ntokens / 1e6:.0f}M words")
    job.log(f"Number of words:  {trainer.nwords}")
    job.log(f"Number of labels: {trainer.nlabels}")
    job.record["dictionary"] = {
        "nwords": trainer.nwords,
        "nlabels": trainer.nlabels,
        "ntokens": trainer.ntokens,
        "labels": list(trainer.labels),
    }
    valid = None
    if validation is not None:
        job.log(f"Loading validation data from {validation}")
        valid = trainer.tokenize_file(validation)
        job.log("Loaded validation data.")
    job.save()
    early = bool(values["early_stopping"]) and valid is not None
    best_accuracy = -1.0
    best = None
    since_best = 0
    job.log("-------------- Start training ------------------")
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=job.console,
        transient=True,
    ) as bar:
        task = bar.add_task("epoch 1", total=params.epochs * trainer.ntokens, rate="")
        for epoch in range(params.epochs):
            offset = epoch * trainer.ntokens

            def advance(done: int, total: int, offset: int = offset) -> None:
                bar.update(task, completed=offset + done)

            bar.update(task, description=f"epoch {epoch + 1}/{params.epochs}")
            stats = trainer.run_epoch(epoch, progress=advance)
            bar.update(task, rate=f"{stats.words_per_sec / 1e6:.2f}M words/s")
            entry: dict[str, Any] = {
                "epoch": stats.epoch,
                "train_accuracy": round(stats.train_accuracy, 6),
                "validation_accuracy": None,
                "loss": round(stats.loss, 6),
                "words_per_sec": round(stats.words_per_sec),
                "seconds": round(stats.seconds, 3),
                "lr": round(stats.lr, 6),
            }
            progress = 100.0 * (epoch + 1) / params.epochs
            job.log(
                f"##### Alpha: {stats.lr:.4f}  Progress: {progress:.2f}%  "
                f"Million Words/sec: {stats.words_per_sec / 1e6:.2f}  Epoch: {stats.epoch}  Loss: {stats.loss:.4f} #####"
            )
            if valid is not None:
                accuracy = trainer.accuracy(valid)
                entry["validation_accuracy"] = round(accuracy, 6)
                job.log(f"Validation accuracy: {accuracy:.6f}")
                if accuracy > best_accuracy:
                    best_accuracy = accuracy
                    job.record["best_epoch"] = stats.epoch
                    since_best = 0
                    if early:
                        job.log("Validation accuracy improved! Storing best weights...")
                        best = trainer.snapshot()
                else:
                    since_best += 1
                    job.log(f"Validation accuracy has not improved for last {since_best} epochs.")
            job.record["epochs"].append(entry)
            job.save()
            if (
                early
                and stats.epoch >= int(values["min_epochs"])
                and since_best >= int(values["patience"])
            ):
                job.log("Reached patience. Terminating training.")
                job.record["stopped_early"] = True
                break
    if early and best is not None:
        trainer.restore(best)
    seconds = sum(e["seconds"] for e in job.record["epochs"])
    tokens = trainer.ntokens * len(job.record["epochs"])
    job.log("Training finished.")
    job.log(f"Average throughput in Million words/sec: {tokens / max(seconds, 1e-9) / 1e6:.2f}")
    job.log(f"Total training time in seconds: {time.monotonic() - job.started:.2f}")
    train_accuracy = trainer.accuracy(trainer.data) if trainer.data is not None else 0.0
    job.log(f"#train_accuracy: {train_accuracy:.4f}")
    job.log(f"Number of train examples: {trainer.data.nlines if trainer.data else 0}")
    final: dict[str, Any] = {
        "train_accuracy": round(train_accuracy, 6),
        "validation_accuracy": None,
    }
    if valid is not None:
        final["validation_accuracy"] = round(trainer.accuracy(valid), 6)
        job.log(f"#validation_accuracy: {final['validation_accuracy']:.4f}")
        job.log(f"Number of validation examples: {valid.nlines}")
    job.record["final_metrics"] = final
    job.record["model"] = _write_archive(job, trainer, train)
    job.finish("Completed")


def _write_archive(job: _Job, trainer: Any, train: Path) -> dict[str, Any]:
    key = layout.model_archive_key(job.name)
    target = job.bucket.local_path(key)
    pre = preprocessing_for(train)
    with tempfile.TemporaryDirectory(prefix="sentiment-model-") as tmp:
        model_bin = Path(tmp) / layout.MODEL_BIN
        trainer.save_bin(model_bin)
        with atomic_path(target) as partial:
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(model_bin, arcname=layout.MODEL_BIN)
                if pre is not None:
                    data = json.dumps(pre, indent=2).encode()
                    info = tarfile.TarInfo(layout.PREPROCESSING)
                    info.size = len(data)
                    info.mtime = int(time.time())
                    tar.addfile(info, io.BytesIO(data))
            digest = _sha256(partial)
            size = partial.stat().st_size
    job.log(f"Model written to {target}")
    return {"key": key, "sha256": digest, "bytes": size, "labels": list(trainer.labels)}


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM stops the job like Ctrl-C does (only possible from the main thread)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise JobStopped("Stopped by SIGTERM.")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _describe(path: Path) -> dict[str, Any]:
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
