"""`sentiment tune`: a tuning job over training jobs (see sentiment.train.tuning)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from sentiment import layout
from sentiment.errors import UsageError
from sentiment.train import hyperparams, tuning


@click.command()
@click.option(
    "--input",
    "prepared",
    type=click.Path(path_type=Path),
    help="A prepared folder: its train.txt and validation.txt.",
)
@click.option("--train", type=click.Path(path_type=Path), help="Training channel (a file).")
@click.option(
    "--validation",
    type=click.Path(path_type=Path),
    help="Validation channel: every trial is measured on it (required).",
)
@click.option(
    "--range",
    "ranges",
    multiple=True,
    metavar="NAME=LOW:HIGH[:log][:int] | NAME=A,B,C",
    help="A hyperparameter to search (repeatable), e.g. learning_rate=0.01:0.5:log.",
)
@click.option(
    "--hp",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A fixed hyperparameter for every trial (repeatable).",
)
@click.option(
    "--objective",
    type=click.Choice(tuning.OBJECTIVES),
    help="What to maximize (default: validation:macro_f1 for more than two labels, "
    "else validation:accuracy).",
)
@click.option(
    "--strategy",
    type=click.Choice(tuning.STRATEGIES),
    default="bayesian",
    show_default=True,
    help="bayesian (Optuna's TPE), random or grid (integer ranges and choices only).",
)
@click.option("--max-jobs", default=30, show_default=True, help="Trials to finish.")
@click.option(
    "--max-parallel-jobs",
    default=1,
    show_default=True,
    help="Trials at once (the cores are shared between them).",
)
@click.option("--max-minutes", type=float, help="Time budget of the tuning job (minutes).")
@click.option(
    "--tuning-job-name",
    help="A name (default tuning-<time>); the name of a stopped tuning job resumes it.",
)
@click.option(
    "--output",
    metavar="BUCKET",
    help="Bucket for the tuning job and its trials (default: the --bucket setting).",
)
@click.pass_context
def command(
    ctx: click.Context,
    prepared: Path | None,
    train: Path | None,
    validation: Path | None,
    ranges: tuple[str, ...],
    pairs: tuple[str, ...],
    objective: str | None,
    strategy: str,
    max_jobs: int,
    max_parallel_jobs: int,
    max_minutes: float | None,
    tuning_job_name: str | None,
    output: str | None,
) -> None:
    """Tune hyperparameters as SageMaker automatic model tuning does: every trial a training
    job, pruned from its per-epoch validation accuracy; Ctrl-C and a rerun with the same
    --tuning-job-name resume it.

    Example: sentiment tune --input work/prepared --range learning_rate=0.01:0.5:log --range epochs=5:50:int --range word_ngrams=1,2,3 --max-jobs 30
    """
    from sentiment.storage import open_bucket

    settings = ctx.obj.settings
    if prepared is not None:
        train = train or prepared / layout.TRAIN_FILE
        validation = validation or prepared / layout.VALIDATION_FILE
    if train is None or validation is None:
        raise UsageError(
            "Give --input PREPARED_FOLDER, or --train FILE and --validation FILE.",
            hint="Example: sentiment tune --input work/prepared --range epochs=5:50:int",
        )
    config = tuning.TuningConfig(
        train=str(train),
        validation=str(validation),
        ranges=tuple(tuning.parse_range(r) for r in ranges),
        fixed=hyperparams.parse_cli_pairs(pairs),
        objective=objective or _objective(validation),
        strategy=strategy,
        max_jobs=max_jobs,
        max_parallel_jobs=max_parallel_jobs,
        max_seconds=None if max_minutes is None else max_minutes * 60,
    )
    bucket = tuning.local_bucket(open_bucket(output or settings.bucket))
    record = tuning.run_tuning(
        config, bucket=bucket, name=tuning_job_name, settings=settings, console=Console(stderr=True)
    )
    best = record["best"]
    shown = " ".join(f"{k}={v}" for k, v in best["params"].items())
    click.echo(
        f"{record['name']} Completed: best trial {best['trial']} ({best['job']}) "
        f"{config.objective} {best['objective']:.4f} with {shown}"
    )


def _objective(validation: Path) -> str:
    if not validation.is_file():
        return "validation:accuracy"  # the missing file is reported by the tuning job
    return tuning.default_objective(validation)
