"""Training jobs: BlazingText's supervised training job, run here, recorded in the bucket.

A job reads a `train` channel (and a `validation` channel, required with early stopping, as in
BlazingText), trains epoch by epoch, and writes what SageMaker writes:

    BUCKET/NAME/job.json               status, hyperparameters, per-epoch metrics, timings, inputs
    BUCKET/NAME/output/model.tar.gz    model.bin (fastText format) + preprocessing.json

The record is rewritten atomically after every epoch, so `sentiment jobs describe` shows a
running job's progress. The archive appears only when the job completes (written beside its
final name and renamed): a stopped or failed job never leaves a model that looks complete, and
`sentiment.model.load_model` refuses a job whose record does not say Completed. A job whose
process died without a word (SIGKILL, power loss) still says InProgress on disk; `read_job` and
`list_jobs` report it as Failed when its process is gone (and `sentiment.model` loads a job
through `read_job`, so every reader gives that one answer).

A job's temporary files (the trainer's encoded pieces, model.bin before it is archived) live in
its own folder, `BUCKET/NAME/.scratch/`, and the archive is written beside its final name
(`output/.tmp-model.tar.gz.*`): a job killed with SIGKILL leaves them there, where the next
training job started in the bucket finds and removes them, once their owner's process is gone
(`clean_leftovers`), and records the job as Failed.

Early stopping is BlazingText's: validation accuracy is measured after every epoch; from
`min_epochs` on, the job stops once `patience` epochs in a row have not beaten the best one,
and the model kept is the best epoch's ("Storing best weights"). Without early stopping the
model is the last epoch's, as in fastText.

Metric lines are printed in BlazingText's log format (`Validation accuracy: 0.922196`,
`#train_accuracy: 0.9888`, `#validation_accuracy: 0.9228`, `##### Alpha: ... #####`) so metric
definitions written for SageMaker's logs (regular expressions over them) work unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import signal
import socket
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
from sentiment.errors import (
    DataError,
    InputNotFound,
    Interrupted,
    JobFailed,
    SentimentError,
    UsageError,
)
from sentiment.storage import LocalBucket, atomic_path

NAME_PREFIX = "blazingtext"
SCRATCH = ".scratch"  # BUCKET/NAME/.scratch: the temporary files of a running job
STATUSES = ("InProgress", "Completed", "Failed", "Stopped")
_MAX_NAME = 63


class JobStopped(Interrupted):
    """The job was stopped by Ctrl-C or SIGTERM."""


# ---------------------------------------------------------------------------------------------
# Names


def default_job_name(now: dt.datetime | None = None) -> str:
    """`blazingtext-YYYY-MM-DD-HH-MM-SS` (UTC), the way SageMaker names a job by default."""
    moment = now or dt.datetime.now(dt.UTC)
    return f"{NAME_PREFIX}-{moment:%Y-%m-%d-%H-%M-%S}"


def check_job_name(name: str) -> None:
    """SageMaker's rule: 1-63 letters, digits and hyphens, starting with a letter or digit."""
    ok = (
        0 < len(name) <= _MAX_NAME
        and name.isascii()
        and name[0].isalnum()
        and all(c.isalnum() or c == "-" for c in name)
    )
    if not ok:
        raise UsageError(
            f"Invalid job name {name!r}.",
            hint="Use 1-63 letters, digits and hyphens, starting with a letter or digit.",
        )


def unique_job_name(
    bucket: LocalBucket, name: str | None, *, now: dt.datetime | None = None
) -> str:
    """The given name, which must be new, or a free default name (not reserved yet).

    Default names are per second; a second job started in the same second gets `-2`, `-3`, ...
    appended (SageMaker would refuse it; a suffix keeps `sentiment run` twice in a row working).
    A name given explicitly is never changed: if it is taken, that is an error.
    """
    if name:
        check_job_name(name)
        if _taken(bucket, name):
            raise _name_taken(bucket, name)
        return name
    for candidate in _default_candidates(now):
        if not _taken(bucket, candidate):
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def reserve_job_name(
    bucket: LocalBucket, name: str | None, *, now: dt.datetime | None = None
) -> str:
    """Like `unique_job_name`, and claims the name by creating its folder (atomic: two jobs
    started at once never share a name)."""
    if name:
        check_job_name(name)
        try:
            _claim(bucket, name)
        except FileExistsError:
            raise _name_taken(bucket, name) from None
        return name
    for candidate in _default_candidates(now):
        try:
            _claim(bucket, candidate)
            return candidate
        except FileExistsError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover


def _default_candidates(now: dt.datetime | None) -> Iterator[str]:
    base = default_job_name(now)
    yield base
    n = 2
    while True:
        yield f"{base}-{n}"
        n += 1


def _taken(bucket: LocalBucket, name: str) -> bool:
    return bucket.local_path(name).exists()


def _claim(bucket: LocalBucket, name: str) -> None:
    folder = bucket.local_path(name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir()  # raises FileExistsError when taken


def _name_taken(bucket: LocalBucket, name: str) -> UsageError:
    return UsageError(
        f"A training job named {name!r} already exists in {bucket.uri}.",
        hint="Job names are unique, as in SageMaker: choose another --job-name "
        "(or leave it out for a new blazingtext-<time> name).",
    )


# ---------------------------------------------------------------------------------------------
# Reading records


def read_job(bucket: LocalBucket, name: str) -> dict[str, Any]:
    """The record of job `name` (InputNotFound if there is none).

    An InProgress job whose process is gone (killed) is reported as Failed; the file itself is
    left as the job wrote it.
    """
    key = layout.job_record_key(name)
    if not _is_simple_name(name) or not bucket.exists(key):
        raise InputNotFound(
            f"No training job {name!r} in {bucket.uri}.",
            hint="List jobs with `sentiment jobs list`; train one with `sentiment train`.",
        )
    try:
        record: dict[str, Any] = bucket.read_json(key)
    except ValueError as err:
        raise DataError(f"The record of job {name!r} ({key}) is not valid JSON: {err}.") from None
    return _with_liveness(record)


def list_jobs(bucket: LocalBucket) -> list[dict[str, Any]]:
    """Every job record in the bucket, newest first (unreadable records are skipped)."""
    root = bucket.local_path("")
    if not root.is_dir():
        return []
    records = []
    for folder in root.iterdir():
        if not (folder / layout.JOB_RECORD).is_file():
            continue
        with contextlib.suppress(ValueError, SentimentError, OSError):
            records.append(read_job(bucket, folder.name))
    return sorted(records, key=lambda r: (r.get("created") or "", r.get("name", "")), reverse=True)


def best_validation_accuracy(record: dict[str, Any]) -> float | None:
    """The highest per-epoch validation accuracy of a record, if it has any."""
    values = [
        e["validation_accuracy"]
        for e in record.get("epochs", [])
        if e.get("validation_accuracy") is not None
    ]
    return max(values) if values else None


def _is_simple_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in {".", ".."}


def _with_liveness(record: dict[str, Any]) -> dict[str, Any]:
    if record.get("status") != "InProgress":
        return record
    process = record.get("process") or {}
    pid, host = process.get("pid"), process.get("host")
    if not isinstance(pid, int) or host != socket.gethostname() or _alive(pid):
        return record
    return record | {
        "status": "Failed",
        "failure_reason": f"The training process (pid {pid}) ended without finishing the job "
        "(killed?). No model was written.",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------
# Running a job


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
    """Run a training job to its end and return its record.

    `hyperparameters` is a map of BlazingText names (plus extras) to values, strings as
    SageMaker passes them or Python values; missing names take BlazingText's defaults.
    Everything is checked before the job is created, so a usage error leaves no record.
    Raises JobStopped (Ctrl-C / SIGTERM; the record says Stopped) or the error that failed
    the job (the record says Failed, with the reason).
    """
    console = console or Console(stderr=True)
    values = hyperparameters_for(hyperparameters, settings)
    train = channel_file(train, "train")
    if validation is not None:
        validation = channel_file(validation, "validation")
    elif values["early_stopping"]:
        raise UsageError(
            "early_stopping=True needs a validation channel, as in BlazingText.",
            hint="Give --validation FILE (prepare writes validation.txt), "
            "or set --hp early_stopping=False.",
        )
    pre = preprocessing_for(train)
    clean_leftovers(bucket, console)
    name = reserve_job_name(bucket, job_name)
    job = _Job(name, bucket, console)
    job.record.update(
        hyperparameters=hyperparams.blazingtext_strings(values),
        extras=hyperparams.extras(values),
        inputs={"train": _describe(train)}
        | ({"validation": _describe(validation)} if validation else {}),
    )
    job.save()
    with _StopSignals() as stop:
        try:
            _train(job, train, validation, values, pre)
        except (KeyboardInterrupt, JobStopped):
            stop.quiet()
            job.discard_model()
            job.finish("Stopped", "Stopped by the user (Ctrl-C or SIGTERM) before completion.")
            raise JobStopped(f"Training job {name} stopped; no model was written.") from None
        except MemoryError:
            stop.quiet()
            job.discard_model()
            err = JobFailed(
                f"Training job {name} ran out of memory.",
                hint="The model holds (words + buckets) x vector_dim floats: lower buckets or "
                "vector_dim (e.g. --hp buckets=200000).",
            )
            job.finish("Failed", err.render())
            raise err from None
        except SentimentError as err:
            stop.quiet()
            job.discard_model()
            job.finish("Failed", err.render())
            raise
        except BaseException as err:  # the record must say Failed whatever happened
            stop.quiet()
            job.discard_model()
            job.finish("Failed", f"{type(err).__name__}: {err}")
            raise
    return job.record


def clean_leftovers(bucket: LocalBucket, console: Console | None = None) -> list[str]:
    """Remove what jobs killed without a word (SIGKILL, power loss) left in the bucket: their
    scratch folders (encoded pieces, an unarchived model.bin: 773 MB in the benchmark) and
    partial or orphaned archives; such a job's record is rewritten as Failed. Only jobs whose
    process is gone are touched (see `read_job`). Returns the names of the jobs cleaned."""
    cleaned = []
    for record in list_jobs(bucket):
        name = str(record.get("name"))
        folder = bucket.local_path(name)
        scratch = folder / SCRATCH
        if record.get("status") == "InProgress":
            continue  # its process is alive
        died = bucket.read_json(layout.job_record_key(name)).get("status") == "InProgress"
        output = folder / "output"
        leftovers = [scratch] if scratch.exists() else []
        if died and output.is_dir():
            leftovers += [p for p in output.iterdir() if p.name.startswith(".tmp-")]
            leftovers += [p for p in [output / layout.MODEL_ARCHIVE] if p.exists()]
        if not leftovers and not died:
            continue
        size = sum(_size(p) for p in leftovers)
        for path in leftovers:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if died:
            bucket.write_json(layout.job_record_key(name), record)
        cleaned.append(name)
        if console is not None:
            console.print(
                f"Cleaned up after job {name} ({record.get('status')}): removed "
                f"{size / 2**20:,.0f} MB of temporary files.",
                markup=False,
                highlight=False,
            )
    return cleaned


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def hyperparameters_for(given: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Resolved hyperparameters; `threads` falls back to the `threads` setting."""
    values = hyperparams.resolve(given)
    if "threads" not in given and settings.threads:
        values["threads"] = settings.threads
    return values


def channel_file(path: Path, channel: str) -> Path:
    """The file of a channel: the path itself, or the one file in a folder (as SageMaker
    mounts a channel: /opt/ml/input/data/<channel>/<file>)."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        preferred = path / layout.PREPARED_SPLITS.get(channel, "")
        if preferred.is_file():
            return preferred
        files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")]
        if len(files) == 1:
            return files[0]
        raise UsageError(
            f"The {channel} channel {path} is a folder with {len(files)} files; "
            "expected one (or a prepared folder's split file).",
            hint=f"Give the {channel} file itself.",
        )
    raise InputNotFound(
        f"No {channel} file at {path}.",
        hint="Make one with `sentiment prepare` (it writes train.txt and validation.txt).",
    )


def preprocessing_for(train: Path) -> dict[str, Any] | None:
    """preprocessing.json for the model: how the training text was made, from the prepared
    folder's manifest.json beside the train file (None when the file has no manifest)."""
    from sentiment.model import Preprocessing
    from sentiment.reviews import RowOptions
    from sentiment.text import Cleaning

    manifest = train.parent / layout.MANIFEST
    if not manifest.is_file():
        return None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        options = RowOptions.from_dict(dict(data.get("cleaning") or {}))
    except (ValueError, TypeError, AttributeError, SentimentError) as err:
        raise DataError(
            f"{manifest} cannot be read: {err}.",
            hint="Re-run `sentiment prepare`, or train from a file without a manifest beside it.",
        ) from None
    cleaning_fields = {f.name for f in fields(Cleaning)}
    rows = {k: v for k, v in options.to_dict().items() if k not in cleaning_fields}
    policy = data.get("policy")
    return Preprocessing(
        options.cleaning, policy if isinstance(policy, str) else None, rows=rows
    ).to_dict()


class _Job:
    """The record of one running job and the console it logs to."""

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
            "algorithm": "BlazingText-compatible supervised (sentiment.engine)",
            "process": {"pid": os.getpid(), "host": socket.gethostname()},
            "epochs": [],
            "best_epoch": None,
            "model_epoch": None,
            "stopped_early": False,
            "final_metrics": {"train_accuracy": None, "validation_accuracy": None},
            "timings": {},
        }
        self.scratch = bucket.local_path(f"{name}/{SCRATCH}")
        self.scratch.mkdir(parents=True, exist_ok=True)

    def save(self) -> None:
        self.record["seconds"] = round(time.monotonic() - self.started, 3)
        self.bucket.write_json(layout.job_record_key(self.name), self.record)

    def finish(self, status: str, reason: str | None = None) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.record.update(status=status, failure_reason=reason, ended=_now())
        self.save()

    def discard_model(self) -> None:
        """Remove an archive this job wrote (a job that did not complete has no model)."""
        self.record.pop("model", None)
        self.bucket.local_path(layout.model_archive_key(self.name)).unlink(missing_ok=True)

    def log(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _train(
    job: _Job,
    train: Path,
    validation: Path | None,
    values: dict[str, Any],
    pre: dict[str, Any] | None,
) -> None:
    from sentiment.engine import Trainer

    params = hyperparams.engine_params(values)
    trainer = Trainer(params, spill_dir=job.scratch)
    timings = job.record["timings"]
    job.log("Running single machine CPU BlazingText-compatible training using supervised mode.")
    job.log(f"Number of threads: {trainer.threads}")
    job.log(f"Processing {train} . File size: {train.stat().st_size / 2**20:.2f} MB")
    if validation is not None:
        job.log(f"Processing {validation} . File size: {validation.stat().st_size / 2**20:.2f} MB")
    clock = time.monotonic()
    trainer.build_vocab(train)
    job.log(f"Read {trainer.ntokens // 1_000_000}M words")
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
        if valid.nlines == 0 or valid.labels.size == 0:
            raise DataError(
                f"The validation file {validation} has no line with a label the training "
                f"data has ({', '.join(trainer.labels)}).",
                hint="Give the validation.txt that prepare wrote with this train.txt.",
            )
        job.log("Loaded validation data.")
    timings["vocab_seconds"] = round(time.monotonic() - clock, 3)
    job.save()

    early = bool(values["early_stopping"])
    min_epochs, patience = int(values["min_epochs"]), int(values["patience"])
    best_accuracy, best, since_best = -1.0, None, 0
    validation_seconds = 0.0
    job.log("-------------- Start training ------------------")
    with _progress_bar(job.console) as bar:
        task = bar.add_task("epoch", total=params.epochs * trainer.ntokens, rate="")
        for epoch in range(params.epochs):
            offset = epoch * trainer.ntokens

            def advance(done: int, total: int, offset: int = offset) -> None:
                bar.update(task, completed=offset + done)

            bar.update(task, description=f"epoch {epoch + 1}/{params.epochs}")
            stats = trainer.run_epoch(epoch, progress=advance)
            bar.update(task, rate=f"{stats.words_per_sec / 1e6:.2f}M words/s")
            job.log(
                f"##### Alpha: {stats.lr:.4f}  Progress: {100.0 * (epoch + 1) / params.epochs:.2f}%  "
                f"Million Words/sec: {stats.words_per_sec / 1e6:.2f} #####"
            )
            job.log(f"-------------- End of epoch: {stats.epoch}")
            job.log(f"Train accuracy: {stats.train_accuracy:.6f}  Loss: {stats.loss:.6f}")
            entry: dict[str, Any] = {
                "epoch": stats.epoch,
                "train_accuracy": round(stats.train_accuracy, 6),
                "validation_accuracy": None,
                "loss": round(stats.loss, 6),
                "words_per_sec": round(stats.words_per_sec),
                "seconds": round(stats.seconds, 3),
                "lr": round(stats.lr, 6),
            }
            if valid is not None:
                clock = time.monotonic()
                job.log(f"Using {trainer.threads} threads for prediction!")
                accuracy = trainer.accuracy(valid)
                entry["validation_accuracy"] = round(accuracy, 6)
                job.log(f"Validation accuracy: {accuracy:.6f}")
                if accuracy > best_accuracy:
                    best_accuracy, since_best = accuracy, 0
                    job.record["best_epoch"] = stats.epoch
                    if early:
                        job.log("Validation accuracy improved! Storing best weights...")
                        best = None  # free the old copy before taking the new one
                        best = trainer.snapshot()
                else:
                    since_best += 1
                    job.log(f"Validation accuracy has not improved for last {since_best} epochs.")
                validation_seconds += time.monotonic() - clock
            job.record["epochs"].append(entry)
            job.save()
            if early and stats.epoch >= min_epochs and since_best >= patience:
                job.log("Reached patience. Terminating training.")
                job.log(
                    f"Stopped after epoch {stats.epoch}; best epoch {job.record['best_epoch']}."
                )
                job.record["stopped_early"] = True
                break
    epochs_run = len(job.record["epochs"])
    job.record["model_epoch"] = epochs_run
    if early and best is not None and job.record["best_epoch"] != epochs_run:
        job.log(f"Restoring the best weights (epoch {job.record['best_epoch']}).")
        trainer.restore(best)
        job.record["model_epoch"] = job.record["best_epoch"]
    best = None
    train_seconds = sum(e["seconds"] for e in job.record["epochs"])
    timings["training_seconds"] = round(train_seconds, 3)
    timings["validation_seconds"] = round(validation_seconds, 3)
    job.log("Training finished.")
    job.log(
        "Average throughput in Million words/sec: "
        f"{trainer.ntokens * epochs_run / max(train_seconds, 1e-9) / 1e6:.2f}"
    )
    job.log(f"Total training time in seconds: {time.monotonic() - job.started:.2f}")

    data = trainer.data
    final: dict[str, Any] = {"train_accuracy": None, "validation_accuracy": None}
    if data is not None:
        final["train_accuracy"] = round(trainer.accuracy(data), 6)
        job.log("")
        job.log(f"#train_accuracy: {final['train_accuracy']:.4f}")
        job.log(f"Number of train examples: {data.nlines}")
    trainer.close()
    if valid is not None:
        final["validation_accuracy"] = round(trainer.accuracy(valid), 6)
        job.log("")
        job.log(f"#validation_accuracy: {final['validation_accuracy']:.4f}")
        job.log(f"Number of validation examples: {valid.nlines}")
    job.record["final_metrics"] = final

    clock = time.monotonic()
    if pre is None:
        job.log(
            f"No {layout.MANIFEST} beside {train}: the model gets no {layout.PREPROCESSING} "
            "(serving will normalize text with the default cleaning)."
        )
    job.record["model"] = _write_archive(job, trainer, pre, validation)
    timings["archive_seconds"] = round(time.monotonic() - clock, 3)
    job.finish("Completed")


def _progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


def _write_archive(
    job: _Job, trainer: Any, pre: dict[str, Any] | None, validation: Path | None
) -> dict[str, Any]:
    """model.tar.gz with model.bin at its root (as SageMaker BlazingText writes it) and the
    preprocessing.json sidecar, and calibration.json fitted on the validation channel when
    there is one; written beside its final name and renamed when complete."""
    key = layout.model_archive_key(job.name)
    target = job.bucket.local_path(key)
    calibrated: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="sentiment-model-", dir=job.scratch) as tmp:
        model_bin = Path(tmp) / layout.MODEL_BIN
        trainer.save_bin(model_bin)
        if validation is not None:
            calibrated = _calibrate(job, model_bin, validation)
        with atomic_path(target) as partial:
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(model_bin, arcname=layout.MODEL_BIN)
                if calibrated is not None:
                    tar.add(Path(tmp) / layout.CALIBRATION, arcname=layout.CALIBRATION)
                if pre is not None:
                    data = json.dumps(pre, indent=2).encode()
                    info = tarfile.TarInfo(layout.PREPROCESSING)
                    info.size = len(data)
                    info.mtime = int(time.time())
                    info.mode = 0o644
                    tar.addfile(info, io.BytesIO(data))
            digest = _sha256(partial)
            size = partial.stat().st_size
    job.log(f"Model written to {target}")
    return {
        "key": key,
        "sha256": digest,
        "bytes": size,
        "labels": list(trainer.labels),
        "calibration": calibrated,
    }


def _calibrate(job: _Job, model_bin: Path, validation: Path) -> dict[str, Any]:
    """Fit the calibration on the validation channel; write calibration.json beside model.bin."""
    from sentiment.calibration import fit_file
    from sentiment.model import load_model_bin

    calibration = fit_file(load_model_bin(model_bin), validation)
    data = calibration.to_dict()
    (model_bin.parent / layout.CALIBRATION).write_text(json.dumps(data, indent=2))
    stats = calibration.stats
    job.log(
        f"Calibration ({calibration.method}, T={calibration.temperature:.3f}) on "
        f"{stats['examples']} validation examples: ECE {stats['ece_before']:.4f} -> "
        f"{stats['ece_after']:.4f}, NLL {stats['nll_before']:.4f} -> {stats['nll_after']:.4f}"
    )
    return data


class _StopSignals:
    """SIGTERM and SIGINT stop the job between two steps of work (the handlers raise in the
    main thread); once the job is being wound up, further signals are ignored so the record
    is always finished. Outside the main thread the handlers cannot be installed and the
    caller's own handling applies."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._quiet = False

    def __enter__(self) -> _StopSignals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def quiet(self) -> None:
        self._quiet = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._quiet:
            return
        self._quiet = True
        raise JobStopped(f"Stopped by {signal.Signals(signum).name}.")


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
