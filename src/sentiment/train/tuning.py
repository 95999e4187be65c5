"""Tuning jobs: SageMaker's automatic model tuning, run here, over our training jobs.

A tuning job searches ranges of hyperparameters (`--range learning_rate=0.01:0.5:log`,
`epochs=5:50:int`, `word_ngrams=1,2,3`) for the best value of an objective
(`validation:accuracy`, or `validation:macro_f1`, the default for more than two labels), with
a strategy: Bayesian (Optuna's TPE sampler), random or grid. Every trial is a real training
job in the bucket (`NAME-001`, `NAME-002`, ...; its record names the tuning job), and trials
whose per-epoch validation accuracy falls below the median of earlier trials at the same
point of their schedule are pruned (stopped, no model).

Its state lives in the bucket:

    BUCKET/NAME/tuning.json   the configuration, status, seconds spent, the best trial
    BUCKET/NAME/tuning.db     Optuna's study (SQLite): every trial, its values and figures

so a tuning job stopped by Ctrl-C (or killed) resumes when the same command is run again with
its name: finished trials are kept, the interrupted one is recorded as failed and the search
goes on to `max_jobs` finished trials (completed or pruned) or the time budget.

Trials are compared at the same fraction of their learning-rate schedule (in tenths: a
20-epoch trial reports after epochs 2, 4, ...; a 10-epoch one after each): fastText's rate
decays linearly over the planned epochs, so a long schedule at its 3rd epoch is still at a
high rate and would look worse than a short one at its 3rd, though it ends better.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from sentiment.config import Settings
from sentiment.errors import DataError, InputNotFound, Interrupted, UsageError
from sentiment.labels import LABEL_PREFIX
from sentiment.records import is_simple_name, read_record
from sentiment.storage import Bucket, LocalBucket
from sentiment.train import hyperparams
from sentiment.train.job import (
    JobStopped,
    StopJob,
    channel_file,
    check_job_name,
    run_training,
)

if TYPE_CHECKING:
    import optuna

    from sentiment.engine import Epoch

RECORD = "tuning.json"
DATABASE = "tuning.db"
NAME_PREFIX = "tuning"
OBJECTIVES = ("validation:accuracy", "validation:macro_f1")
STRATEGIES = ("bayesian", "random", "grid")
# Trial job names are NAME-001 ...: the tuning job's name leaves room for the suffix.
_MAX_NAME = 58
_MAX_GRID = 1000
# Pruning: the median of earlier trials, once this many have finished, and never before the
# first tenth of a schedule (the first epoch of a 10-epoch trial: its rate still at 90%).
_STARTUP_TRIALS = 5
_WARMUP_TENTHS = 1

# What `sentiment run --tune MINUTES` searches: the ranges the README's measurements moved
# (learning rate, epochs, n-grams) and the model's size.
DEFAULT_RANGES = (
    "learning_rate=0.02:0.5:log",
    "epochs=5:40:int",
    "word_ngrams=1,2,3",
    "vector_dim=10:100:log",
    "min_count=1:5",
)


class TuningStopped(Interrupted):
    """The tuning job was stopped by Ctrl-C or SIGTERM (it resumes when rerun)."""


# ---------------------------------------------------------------------------------------------
# Ranges


@dataclass(frozen=True)
class Range:
    """One hyperparameter's search range: [low, high] (on a log scale or not), or choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def is_int(self) -> bool:
        return hyperparams.BY_NAME[self.name].kind is int

    def suggest(self, trial: optuna.Trial) -> Any:
        """The trial's value for this hyperparameter."""
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.is_int:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def grid(self) -> tuple[Any, ...]:
        """Every value of the range, for the grid strategy (integer ranges or choices only)."""
        if self.choices:
            return self.choices
        assert self.low is not None and self.high is not None
        if not self.is_int:
            raise UsageError(
                f"The grid strategy needs the values of {self.name}, not a float range.",
                hint=f"List them: --range {self.name}=0.05,0.1,0.2",
            )
        return tuple(range(int(self.low), int(self.high) + 1))

    def to_text(self) -> str:
        """The range as --range spells it."""
        if self.choices:
            return f"{self.name}=" + ",".join(hyperparams.format_value(c) for c in self.choices)
        kind = ":int" if self.is_int else ""
        log = ":log" if self.log else ""
        return f"{self.name}={self._end(self.low)}:{self._end(self.high)}{log}{kind}"

    def _end(self, value: float | None) -> str:
        return hyperparams.format_value(int(value) if self.is_int and value is not None else value)


def parse_range(text: str) -> Range:
    """`name=low:high[:log][:int]` or `name=a,b,c`, checked against the hyperparameter table.

    Raises UsageError saying what a range looks like, or what the values must be."""
    name, sep, spec = (part.strip() for part in text.partition("="))
    if not sep or not name or not spec:
        raise UsageError(f"--range takes name=low:high or name=a,b,c, got {text!r}.", hint=_EXAMPLE)
    if name not in hyperparams.BY_NAME:
        hyperparams.parse_value(name, "")  # raises the unknown-name error with its suggestions
    if name in _FIXED_ONLY:
        raise UsageError(f"{name} cannot be tuned.", hint="Give it with --hp instead.")
    if ":" not in spec:
        choices = tuple(hyperparams.parse_value(name, c) for c in spec.split(",") if c.strip())
        if len(set(choices)) != len(choices) or not choices:
            raise UsageError(
                f"The choices of {name} must be distinct, got {spec!r}.", hint=_EXAMPLE
            )
        return Range(name, choices=choices)
    parts = [p.strip() for p in spec.split(":")]
    low_text, high_text, flags = parts[0], parts[1], parts[2:]
    spec_kind = hyperparams.BY_NAME[name].kind
    if spec_kind not in (int, float) or set(flags) - {"log", "int"}:
        raise UsageError(f"Bad range for {name}: {spec!r}.", hint=_EXAMPLE)
    if "int" in flags and spec_kind is not int:
        raise UsageError(f"{name} is a float: its range cannot be :int.", hint=_EXAMPLE)
    low, high = hyperparams.parse_value(name, low_text), hyperparams.parse_value(name, high_text)
    if not low < high:
        raise UsageError(f"The range of {name} must go from low to high, got {spec!r}.")
    log = "log" in flags
    if log and low <= 0:
        raise UsageError(f"A log range of {name} must start above 0, got {spec!r}.")
    return Range(name, float(low), float(high), log)


_EXAMPLE = (
    "Examples: --range learning_rate=0.01:0.5:log --range epochs=5:50:int --range word_ngrams=1,2,3"
)
# Not tunable: they are not the model's (mode, loss), or tuning them is meaningless (threads,
# seed), or they decide whether validation exists (early stopping is given, not searched).
_FIXED_ONLY = frozenset({"mode", "loss", "threads", "seed"})


# ---------------------------------------------------------------------------------------------
# The configuration and the record


@dataclass(frozen=True)
class TuningConfig:
    """What a tuning job searches, and how; recorded, so that a rerun resumes the same search."""

    train: str
    validation: str
    ranges: tuple[Range, ...]
    fixed: Mapping[str, str] = field(default_factory=dict)  # --hp values, SageMaker's strings
    objective: str = "validation:accuracy"
    strategy: str = "bayesian"
    max_jobs: int = 30
    max_parallel_jobs: int = 1
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if not self.ranges:
            raise UsageError("Give at least one --range to tune.", hint=_EXAMPLE)
        names = [r.name for r in self.ranges]
        if len(set(names)) != len(names):
            raise UsageError("Each hyperparameter takes one --range.")
        both = sorted(set(names) & set(self.fixed))
        if both:
            raise UsageError(f"{', '.join(both)}: given both a --range and a --hp value.")
        if self.objective not in OBJECTIVES:
            raise UsageError(
                f"Unknown objective {self.objective!r}; use one of {', '.join(OBJECTIVES)}."
            )
        if self.strategy not in STRATEGIES:
            raise UsageError(
                f"Unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}."
            )
        if self.max_jobs < 1 or self.max_parallel_jobs < 1:
            raise UsageError("--max-jobs and --max-parallel-jobs must be at least 1.")
        hyperparams.resolve(self.fixed)  # a bad --hp fails before anything starts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ranges"] = [r.to_text() for r in self.ranges]
        data["fixed"] = dict(self.fixed)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TuningConfig:
        values = dict(data)
        values["ranges"] = tuple(parse_range(r) for r in values["ranges"])
        return cls(**values)


def default_objective(validation: Path) -> str:
    """validation:macro_f1 for more than two labels (accuracy rewards the majority class),
    else validation:accuracy."""
    labels: set[str] = set()
    with open(validation, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            first = line.split(" ", 1)[0]
            if first.startswith(LABEL_PREFIX):
                labels.add(first)
                if len(labels) > 2:
                    return "validation:macro_f1"
    return "validation:accuracy"


def local_bucket(bucket: Bucket) -> LocalBucket:
    """The bucket, if it is a local folder: a tuning job's Optuna study is a SQLite file in it
    (resumable, shared by parallel trials), which an object store cannot hold."""
    if not isinstance(bucket, LocalBucket):
        raise UsageError(
            f"Tuning jobs keep their study (a SQLite database) in a local bucket; {bucket.uri} "
            "is not one.",
            hint="Give --bucket a local folder (train the final model on SageMaker or publish "
            "it to S3 afterwards).",
        )
    return bucket


def read_tuning(bucket: LocalBucket, name: str, *, trials: bool = True) -> dict[str, Any]:
    """The record of tuning job `name`, with its trials read from its study (InputNotFound if
    there is none). An InProgress record whose process is gone reads as Failed."""
    key = _key(name)
    if not is_simple_name(name) or not bucket.exists(key):
        raise InputNotFound(
            f"No tuning job {name!r} in {bucket.uri}.",
            hint="List them with `sentiment tuning list`; start one with `sentiment tune`.",
        )
    record = read_record(bucket, key, name=name, what="tuning")
    if trials:
        record["trials"] = _trials(bucket, name)
    return record


def list_tunings(bucket: LocalBucket) -> list[dict[str, Any]]:
    """Every tuning job in the bucket (without their trials), newest first."""
    root = bucket.local_path("")
    if not root.is_dir():
        return []
    records = []
    for folder in root.iterdir():
        if (folder / RECORD).is_file():
            with contextlib.suppress(ValueError, OSError, InputNotFound, DataError):
                records.append(read_tuning(bucket, folder.name, trials=False))
    return sorted(records, key=lambda r: (r.get("created") or "", r.get("name", "")), reverse=True)


def _key(name: str) -> str:
    return f"{name}/{RECORD}"


def _storage_url(bucket: LocalBucket, name: str) -> str:
    return f"sqlite:///{bucket.local_path(f'{name}/{DATABASE}')}"


def _trials(bucket: LocalBucket, name: str) -> list[dict[str, Any]]:
    study = _load_study(bucket, name)
    if study is None:
        return []
    return [_trial_entry(t) for t in study.get_trials(deepcopy=False)]


def _trial_entry(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return {
        "number": trial.number + 1,
        "job": trial.user_attrs.get("job"),
        "state": trial.state.name,
        "objective": trial.value if trial.state.name == "COMPLETE" else None,
        "params": dict(trial.params),
        "epochs": len(trial.user_attrs.get("epochs") or []),
        "validation_accuracy": trial.user_attrs.get("epochs") or [],
        "seconds": (
            round((trial.datetime_complete - trial.datetime_start).total_seconds(), 1)
            if trial.datetime_complete and trial.datetime_start
            else None
        ),
    }


# ---------------------------------------------------------------------------------------------
# Running a tuning job


def unique_tuning_name(bucket: LocalBucket, name: str | None) -> str:
    """The given name (checked), or `tuning-YYYY-MM-DD-HH-MM-SS` made free with a suffix."""
    if name:
        check_job_name(name)
        if len(name) > _MAX_NAME:
            raise UsageError(
                f"A tuning job's name has at most {_MAX_NAME} characters (its trials add -NNN)."
            )
        return name
    base = f"{NAME_PREFIX}-{dt.datetime.now(dt.UTC):%Y-%m-%d-%H-%M-%S}"
    candidate, n = base, 2
    while bucket.local_path(candidate).exists():
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def run_tuning(
    config: TuningConfig,
    *,
    bucket: LocalBucket,
    name: str | None,
    settings: Settings,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run (or resume) a tuning job to its end and return its record with its trials.

    A name that exists resumes that job when its configuration is the same (UsageError when it
    differs or when the job has completed). Raises TuningStopped on Ctrl-C / SIGTERM, with the
    record saying Stopped and the trials done kept.
    """
    import optuna

    console = console or Console(stderr=True)
    train = channel_file(Path(config.train), "train")
    validation = channel_file(Path(config.validation), "validation")
    name = unique_tuning_name(bucket, name)
    record = _start_record(bucket, name, config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=_storage_url(bucket, name),
        direction="maximize",
        sampler=_sampler(config),
        pruner=_pruner(),
        load_if_exists=True,
    )
    study.set_user_attr("objective", config.objective)
    _fail_interrupted(study)
    started = time.monotonic()
    spent = float(record.get("seconds") or 0.0)

    lock = threading.Lock()  # parallel trials save from their own threads

    def save(status: str, reason: str | None = None) -> None:
        with lock:
            record.update(
                status=status,
                failure_reason=reason,
                seconds=round(spent + time.monotonic() - started, 3),
                best=_best(study),
                trials_finished=len(_finished(study)),
            )
            if status != "InProgress":
                record["ended"] = _now()
            bucket.write_json(_key(name), record)

    left = config.max_jobs - len(_finished(study))
    if config.strategy == "grid":
        left = min(left, _grid_size(config) - len(_finished(study)))
    timeout = None if config.max_seconds is None else max(0.0, config.max_seconds - spent)
    deadline = None if timeout is None else time.monotonic() + timeout
    objective = _Objective(
        config, name, train, validation, bucket, settings, console, save, deadline
    )
    _say(
        console,
        f"Tuning job {name}: {config.strategy} search of {', '.join(r.to_text() for r in config.ranges)}; "
        f"objective {config.objective}; {left} trial(s) to run"
        + (f" within {timeout / 60:.1f} min" if timeout is not None else ""),
    )
    try:
        if left > 0 and (timeout is None or timeout > 0):
            study.optimize(
                objective,
                n_trials=left,
                timeout=timeout,
                n_jobs=config.max_parallel_jobs,
            )
    except (KeyboardInterrupt, JobStopped):
        save("Stopped", "Stopped by the user (Ctrl-C or SIGTERM); rerun to resume.")
        raise TuningStopped(
            f"Tuning job {name} stopped after {len(_finished(study))} finished trial(s).",
            hint=f"Resume it: the same command with --tuning-job-name {name}.",
        ) from None
    except BaseException as err:
        save("Failed", f"{type(err).__name__}: {err}")
        raise
    if _best(study) is None:
        save("Failed", "No trial completed.")
        raise DataError(f"Tuning job {name} ended with no completed trial.")
    save("Completed")
    _write_plots(bucket, name, study)
    return read_tuning(bucket, name)


def _start_record(bucket: LocalBucket, name: str, config: TuningConfig) -> dict[str, Any]:
    key = _key(name)
    if bucket.exists(key):
        record = read_record(bucket, key, name=name, what="tuning")
        if record.get("status") == "Completed":
            raise UsageError(
                f"Tuning job {name} has completed.", hint="Give a new --tuning-job-name."
            )
        if record.get("status") == "InProgress":
            raise UsageError(f"Tuning job {name} is running (pid {record['process']['pid']}).")
        if record.get("config") != config.to_dict():
            raise UsageError(
                f"Tuning job {name} exists with another configuration: it resumes only with the "
                "same arguments.",
                hint=f"Its configuration: {record.get('config')}. Or give a new --tuning-job-name.",
            )
        record.update(status="InProgress", failure_reason=None, ended=None)
    else:
        if bucket.local_path(name).exists():
            raise UsageError(f"{name} is already a training job's name in {bucket.uri}.")
        now = _now()
        record = {
            "name": name,
            "status": "InProgress",
            "failure_reason": None,
            "created": now,
            "ended": None,
            "seconds": 0.0,
            "config": config.to_dict(),
            "best": None,
            "trials_finished": 0,
        }
    record["process"] = {"pid": os.getpid(), "host": socket.gethostname()}
    bucket.write_json(key, record)
    return record


@dataclass
class _Objective:
    """One trial: a training job with the trial's values, pruned from its per-epoch figures."""

    config: TuningConfig
    name: str
    train: Path
    validation: Path
    bucket: LocalBucket
    settings: Settings
    console: Console
    save: Callable[[str], None]
    deadline: float | None

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        values = {r.name: r.suggest(trial) for r in self.config.ranges}
        job = f"{self.name}-{trial.number + 1:03d}"
        trial.set_user_attr("job", job)
        given = dict(self.config.fixed) | values
        if "threads" not in given:
            cores = self.settings.threads or os.cpu_count() or 1
            given["threads"] = max(1, cores // self.config.max_parallel_jobs)
        accuracies: list[float] = []
        try:
            record = run_training(
                train=self.train,
                validation=self.validation,
                bucket=self.bucket,
                job_name=job,
                hyperparameters=given,
                settings=self.settings,
                console=Console(stderr=True, quiet=True),
                on_epoch=_pruning(
                    trial,
                    self.name,
                    int(hyperparams.resolve(given)["epochs"]),
                    accuracies,
                    self.deadline,
                ),
                tuning_job=self.name,
            )
        except StopJob as err:
            trial.set_user_attr("epochs", accuracies)
            self._line(trial, job, values, f"stopped after epoch {len(accuracies)}: {err}")
            self.save("InProgress")
            raise optuna.TrialPruned() from None
        trial.set_user_attr("epochs", accuracies)
        value = objective_value(self.config.objective, record, self.bucket, self.validation)
        self._line(trial, job, values, f"{self.config.objective} {value:.4f}")
        self.save("InProgress")
        return value

    def _line(self, trial: optuna.Trial, job: str, values: Mapping[str, Any], result: str) -> None:
        shown = " ".join(f"{k}={_short(v)}" for k, v in values.items())
        _say(self.console, f"trial {trial.number + 1} ({job}): {shown}: {result}")


def _pruning(
    trial: optuna.Trial,
    tuning: str,
    epochs: int,
    accuracies: list[float],
    deadline: float | None = None,
) -> Callable[[Epoch], None]:
    """The on_epoch listener of a trial: report validation accuracy at each new tenth of the
    schedule; stop the job when the pruner says so, or once the time budget is spent
    (`deadline`, time.monotonic()): Optuna's timeout starts no new trial but lets a running
    one finish, which overran a 1-minute budget by the whole of a 40-epoch trial."""
    reported: set[int] = set()

    def on_epoch(epoch: Epoch) -> None:
        accuracy = epoch.validation_accuracy
        assert accuracy is not None  # a tuning job always has validation
        accuracies.append(round(accuracy, 6))
        if deadline is not None and time.monotonic() > deadline and epoch.epoch < epochs:
            raise StopJob(
                f"Stopped by tuning job {tuning} after epoch {epoch.epoch}: its time budget is spent."
            )
        tenth = 10 * epoch.epoch // epochs
        if tenth in reported or epoch.epoch == epochs:
            return  # the last epoch is the trial's result, not a reason to stop it
        reported.add(tenth)
        trial.report(accuracy, tenth)
        if trial.should_prune():
            raise StopJob(
                f"Pruned by tuning job {tuning} after epoch {epoch.epoch}: validation "
                f"accuracy {accuracy:.4f} is below the median of earlier trials there."
            )

    return on_epoch


def objective_value(
    objective: str, record: Mapping[str, Any], bucket: LocalBucket, validation: Path
) -> float:
    """A completed job's objective: its validation accuracy (of the weights kept), or the
    macro-F1 of its model's own (uncalibrated) answers on the validation file."""
    if objective == "validation:accuracy":
        return float(record["final_metrics"]["validation_accuracy"])
    import numpy as np

    from sentiment.labels import read_labelled
    from sentiment.metrics import classification
    from sentiment.model import load_model

    model = load_model(str(record["name"]), bucket=bucket)
    texts, truth = read_labelled(validation, model.classes)
    probs = model.predict_proba(texts, raw=True, raw_scores=True)
    metrics = classification(np.asarray(truth), probs, list(model.classes))
    return float(metrics["macro"]["f1"])


def _sampler(config: TuningConfig) -> optuna.samplers.BaseSampler:
    import optuna

    seed = int(hyperparams.resolve(config.fixed)["seed"])
    if config.strategy == "grid":
        return optuna.samplers.GridSampler(
            {r.name: list(r.grid()) for r in config.ranges}, seed=seed
        )
    if config.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE starts from 10 random trials by default: a third of a 30-trial budget; 5 are enough
    # for the few dimensions tuned here.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, config.max_jobs))


def _pruner() -> optuna.pruners.BasePruner:
    import optuna

    return optuna.pruners.MedianPruner(
        n_startup_trials=_STARTUP_TRIALS, n_warmup_steps=_WARMUP_TENTHS
    )


def _grid_size(config: TuningConfig) -> int:
    return math.prod(len(r.grid()) for r in config.ranges)


def _fail_interrupted(study: optuna.Study) -> None:
    """Trials left running by a killed or interrupted run end as failed (their jobs say
    Stopped or, killed, Failed): the search resumes after them."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)


def _finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _best(study: optuna.Study) -> dict[str, Any] | None:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return None
    best = max(done, key=lambda t: (t.value or 0.0, -t.number))
    return {
        "trial": best.number + 1,
        "job": best.user_attrs.get("job"),
        "objective": best.value,
        "params": {k: hyperparams.format_value(v) for k, v in best.params.items()},
    }


def _load_study(bucket: LocalBucket, name: str) -> optuna.Study | None:
    import optuna

    if not bucket.local_path(f"{name}/{DATABASE}").is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=name, storage=_storage_url(bucket, name))
    except KeyError:
        return None


def best_hyperparameters(record: Mapping[str, Any]) -> dict[str, str]:
    """The fixed values and the best trial's: what a final model is trained with."""
    best = record.get("best")
    if not best:
        raise DataError(f"Tuning job {record.get('name')} has no completed trial.")
    return dict(record["config"]["fixed"]) | dict(best["params"])


# ---------------------------------------------------------------------------------------------
# Plots: objective by trial, parameter importance


PLOTS = ("tuning_objective.png", "tuning_importance.png")


def plots_folder(bucket: LocalBucket, name: str) -> Path:
    return bucket.local_path(f"{name}/plots")


def _write_plots(bucket: LocalBucket, name: str, study: optuna.Study) -> list[Path]:
    """The tuning job's plots, into BUCKET/NAME/plots/ (the best model's report shows them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sentiment.files import atomic_path

    folder = plots_folder(bucket, name)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, figure in zip(
        PLOTS, (_objective_figure(study), _importance_figure(study)), strict=True
    ):
        if figure is None:
            continue
        with atomic_path(folder / filename) as partial:
            figure.savefig(partial, format="png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(folder / filename)
    return written


def _objective_figure(study: optuna.Study) -> Any:
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    fig, ax = plt.subplots(figsize=(6, 3.4))
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.PRUNED]
    ax.scatter(
        [t.number + 1 for t in done], [float(t.value or 0.0) for t in done], label="completed", s=18
    )
    if pruned:
        last = [
            list(t.intermediate_values.values())[-1] if t.intermediate_values else None
            for t in pruned
        ]
        points = [(t.number + 1, v) for t, v in zip(pruned, last, strict=True) if v is not None]
        if points:
            ax.scatter(
                *zip(*points, strict=True), marker="x", color="grey", label="pruned (last accuracy)"
            )
    best, line = -math.inf, []
    for t in sorted(done, key=lambda t: t.number):
        best = max(best, t.value or -math.inf)
        line.append((t.number + 1, best))
    if line:
        ax.step(*zip(*line, strict=True), where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(str(study.user_attrs.get("objective", "objective")))
    ax.set_title("Objective by trial")
    ax.legend(fontsize=8)
    return fig


def _importance_figure(study: optuna.Study) -> Any:
    import matplotlib.pyplot as plt
    import optuna

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the evaluator is marked experimental
            importance = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
            )
    except (RuntimeError, ValueError):
        return None  # too few completed trials, or one parameter value only
    if not importance:
        return None
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(importance)))
    names = list(importance)[::-1]
    ax.barh(names, [importance[n] for n in names])
    ax.set_xlabel("importance (PED-ANOVA, share of the objective's spread)")
    ax.set_title("Hyperparameter importance")
    return fig


def tuning_plots(bucket: LocalBucket, job_record: Mapping[str, Any]) -> list[Path]:
    """The plots of the tuning job that started a training job, if it has any."""
    tuning = job_record.get("tuning_job")
    if not isinstance(tuning, str):
        return []
    folder = plots_folder(bucket, tuning)
    return [folder / p for p in PLOTS if (folder / p).is_file()]


def _say(console: Console, line: str) -> None:
    console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
