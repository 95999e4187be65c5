"""Training jobs: BlazingText's supervised training job, run here, recorded in the bucket.

A job names itself, reads a `train` channel (and a `validation` channel, required with early
stopping, as in BlazingText), has the engine fit the model (`sentiment.engine.fit`: the epoch
loop, early stopping and the best weights live there) and writes what SageMaker writes:

    BUCKET/NAME/job.json               status, hyperparameters, per-epoch metrics, timings, inputs
    BUCKET/NAME/output/model.tar.gz    model.bin (fastText format) + preprocessing.json

The record is rewritten atomically after every epoch, so `sentiment jobs describe` shows a
running job's progress. The archive appears only when the job completes (written beside its
final name and renamed): a stopped or failed job never leaves a model that looks complete, and
`sentiment.model.load_model` refuses a job whose record does not say Completed. A job whose
process died without a word (SIGKILL, power loss) still says InProgress on disk; its readers
(`sentiment.records`, the one reader of records) report it as Failed when its process is gone.

A job's temporary files (the trainer's encoded pieces, model.bin before it is archived) live in
its own folder, `BUCKET/NAME/.scratch/`, and the archive is written beside its final name
(`output/.tmp-model.tar.gz.*`): a job killed with SIGKILL leaves them there, where the next
training job started in the bucket finds and removes them, once their owner's process is gone
(`clean_leftovers`), and records the job as Failed.

Metric lines are printed in BlazingText's log format (by the engine), so metric definitions
written for SageMaker's logs (regular expressions over them) work unchanged. A job started by a
tuning job (`sentiment.train.tuning`) names it in its record (`tuning_job`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from sentiment import layout
from sentiment.calibration import fit_file
from sentiment.config import Settings
from sentiment.errors import (
    DataError,
    InputNotFound,
    Interrupted,
    JobFailed,
    SentimentError,
    UsageError,
)
from sentiment.files import TMP_PREFIX, sha256_file
from sentiment.model import Preprocessing, load_model_bin, write_model_archive
from sentiment.records import list_jobs
from sentiment.reviews import RowOptions
from sentiment.storage import Bucket, LocalBucket
from sentiment.text import Cleaning
from sentiment.train import hyperparams
from sentiment.train.hyperparams import Hyperparameters

if TYPE_CHECKING:
    from sentiment.engine import Epoch, Trainer

NAME_PREFIX = "blazingtext"
SCRATCH = ".scratch"  # BUCKET/NAME/.scratch: the temporary files of a running job
STATUSES = ("InProgress", "Completed", "Failed", "Stopped")
_MAX_NAME = 63


class JobStopped(Interrupted):
    """The job was stopped by Ctrl-C or SIGTERM."""


class StopJob(Exception):
    """Raised by an `on_epoch` listener to end a job before its last epoch (a tuner pruning a
    trial): the record says Stopped, with this reason, and no model is written."""


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


def refuse_taken_name(bucket: Bucket, name: str) -> None:
    """UsageError when `bucket` holds a record of job `name`: the check of a bucket where a name
    cannot be claimed by creating its folder (S3), made before anything is started."""
    if bucket.exists(layout.job_record_key(name)):
        raise _name_taken(bucket, name)


def _name_taken(bucket: Bucket, name: str) -> UsageError:
    return UsageError(
        f"A training job named {name!r} already exists in {bucket.uri}.",
        hint="Job names are unique, as in SageMaker: choose another --job-name "
        "(or leave it out for a new blazingtext-<time> name).",
    )


# ---------------------------------------------------------------------------------------------
# Running a job


def run_training(
    *,
    train: Path,
    validation: Path | None,
    bucket: LocalBucket,
    job_name: str | None,
    hyperparameters: Mapping[str, Any],
    settings: Settings,
    console: Console | None = None,
    on_epoch: Callable[[Epoch], None] | None = None,
    tuning_job: str | None = None,
) -> dict[str, Any]:
    """Run a training job to its end and return its record.

    `hyperparameters` is a map of BlazingText names (plus extras) to values, strings as
    SageMaker passes them or Python values; missing names take BlazingText's defaults.
    Everything is checked before the job is created, so a usage error leaves no record.
    `on_epoch` hears every epoch's figures (and may raise StopJob). Raises JobStopped (Ctrl-C /
    SIGTERM; the record says Stopped), StopJob, or the error that failed the job (the record
    says Failed, with the reason).
    """
    console = console or Console(stderr=True)
    values = hyperparams.resolve(hyperparameters, threads=settings.threads)
    train = channel_file(train, "train")
    if validation is not None:
        validation = channel_file(validation, "validation")
    elif values.early_stopping is not None:
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
        hyperparameters=values.strings(),
        extras=values.extras(),
        inputs={"train": _describe(train)}
        | ({"validation": _describe(validation)} if validation else {}),
    )
    if tuning_job is not None:
        job.record["tuning_job"] = tuning_job
    job.save()
    with _StopSignals() as stop:
        try:
            _train(job, train, validation, values, pre, on_epoch)
        except BaseException as err:  # the record must say how it ended, whatever happened
            stop.quiet()
            job.discard_model()
            status, reason, raised = _ending(name, err)
            job.finish(status, reason)
            if raised is err:
                raise
            raise raised from None
    return job.record


def _ending(name: str, err: BaseException) -> tuple[str, str, BaseException]:
    """How a job that raised `err` ends: its status, the record's reason, what to raise."""
    if isinstance(err, (KeyboardInterrupt, JobStopped)):
        reason = "Stopped by the user (Ctrl-C or SIGTERM) before completion."
        return "Stopped", reason, JobStopped(f"Training job {name} stopped; no model was written.")
    if isinstance(err, StopJob):
        return "Stopped", str(err), err
    if isinstance(err, MemoryError):
        failed = JobFailed(
            f"Training job {name} ran out of memory.",
            hint="The model holds (words + buckets) x vector_dim floats: lower buckets or "
            "vector_dim (e.g. --hp buckets=200000).",
        )
        return "Failed", failed.render(), failed
    if isinstance(err, SentimentError):
        return "Failed", err.render(), err
    return "Failed", f"{type(err).__name__}: {err}", err


def clean_leftovers(bucket: LocalBucket, console: Console | None = None) -> list[str]:
    """Remove what jobs killed without a word (SIGKILL, power loss) left in the bucket: their
    scratch folders (encoded pieces, an unarchived model.bin: 773 MB in the benchmark) and
    partial or orphaned archives; such a job's record is rewritten as Failed. Only jobs whose
    process is gone are touched (see `sentiment.records`). Returns the names of the jobs cleaned."""
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
            leftovers += [p for p in output.iterdir() if p.name.startswith(TMP_PREFIX)]
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
    values: Hyperparameters,
    pre: dict[str, Any] | None,
    on_epoch: Callable[[Epoch], None] | None,
) -> None:
    from sentiment.engine import Listeners, fit

    clock = time.monotonic()
    epochs = values.engine.epochs

    def vocab(trainer: Trainer) -> None:
        job.record["dictionary"] = {
            "nwords": trainer.nwords,
            "nlabels": trainer.nlabels,
            "ntokens": trainer.ntokens,
            "labels": list(trainer.labels),
        }
        job.record["timings"]["vocab_seconds"] = round(time.monotonic() - clock, 3)
        job.save()
        bar.update(task, total=epochs * trainer.ntokens)

    def epoch_done(epoch: Epoch) -> None:
        bar.update(task, rate=f"{epoch.stats.words_per_sec / 1e6:.2f}M words/s")
        job.record["epochs"].append(_epoch_entry(epoch))
        if epoch.improved:
            job.record["best_epoch"] = epoch.epoch
        job.save()
        if on_epoch is not None:
            on_epoch(epoch)

    def progress(epoch: int, done: int, total: int) -> None:
        bar.update(task, completed=epoch * total + done, description=f"epoch {epoch + 1}/{epochs}")

    with _progress_bar(job.console) as bar:
        task = bar.add_task("epoch", total=epochs, rate="")
        result = fit(
            train,
            validation,
            values.engine,
            early_stopping=values.early_stopping,
            on_epoch=epoch_done,
            listeners=Listeners(log=job.log, on_vocab=vocab, on_progress=progress),
            spill_dir=job.scratch,
        )
    job.log(f"Total training time in seconds: {time.monotonic() - job.started:.2f}")
    job.record.update(
        best_epoch=result.best_epoch,
        model_epoch=result.model_epoch,
        stopped_early=result.stopped_early,
        final_metrics={
            "train_accuracy": _round(result.train_accuracy),
            "validation_accuracy": _round(result.validation_accuracy),
        },
    )
    timings = job.record["timings"]
    timings["training_seconds"] = round(sum(e.stats.seconds for e in result.epochs), 3)
    timings["validation_seconds"] = round(result.validation_seconds, 3)
    clock = time.monotonic()
    if pre is None:
        job.log(
            f"No {layout.MANIFEST} beside {train}: the model gets no {layout.PREPROCESSING} "
            "(serving will normalize text with the default cleaning)."
        )
    job.record["model"] = _write_archive(job, result.trainer, pre, validation)
    timings["archive_seconds"] = round(time.monotonic() - clock, 3)
    job.finish("Completed")


def _epoch_entry(epoch: Epoch) -> dict[str, Any]:
    stats = epoch.stats
    return {
        "epoch": stats.epoch,
        "train_accuracy": round(stats.train_accuracy, 6),
        "validation_accuracy": _round(epoch.validation_accuracy),
        "loss": round(stats.loss, 6),
        "words_per_sec": round(stats.words_per_sec),
        "seconds": round(stats.seconds, 3),
        "lr": round(stats.lr, 6),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


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
    job: _Job, trainer: Trainer, pre: dict[str, Any] | None, validation: Path | None
) -> dict[str, Any]:
    """model.tar.gz with model.bin at its root (as SageMaker BlazingText writes it) and the
    preprocessing.json sidecar, and calibration.json fitted on the validation channel when
    there is one; written beside its final name and renamed when complete."""
    key = layout.model_archive_key(job.name)
    target = job.bucket.local_path(key)
    calibrated: dict[str, Any] | None = None
    sidecars: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="sentiment-model-", dir=job.scratch) as tmp:
        model_bin = Path(tmp) / layout.MODEL_BIN
        trainer.save_bin(model_bin)
        if validation is not None:
            calibrated = _calibrate(job, model_bin, validation)
            sidecars[layout.CALIBRATION] = json.dumps(calibrated, indent=2).encode()
        if pre is not None:
            sidecars[layout.PREPROCESSING] = json.dumps(pre, indent=2).encode()
        digest, size = write_model_archive(target, model_bin, sidecars)
    job.log(f"Model written to {target}")
    return {
        "key": key,
        "sha256": digest,
        "bytes": size,
        "labels": list(trainer.labels),
        "calibration": calibrated,
    }


def _calibrate(job: _Job, model_bin: Path, validation: Path) -> dict[str, Any]:
    """The calibration fitted on the validation channel, as calibration.json holds it."""
    calibration = fit_file(load_model_bin(model_bin), validation)
    data = calibration.to_dict()
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
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
