"""`sentiment train`: a BlazingText-compatible training job."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from sentiment import hyperparams, layout
from sentiment.errors import UsageError

_HP_HELP = ", ".join(f"{h.name} ({h.default})" for h in hyperparams.TABLE)


@click.command()
@click.option(
    "--train",
    "train",
    type=click.Path(path_type=Path),
    help="Training channel: a file in BlazingText's format.",
)
@click.option(
    "--validation",
    type=click.Path(path_type=Path),
    help="Validation channel (required with early_stopping=True).",
)
@click.option(
    "--input",
    "prepared",
    type=click.Path(path_type=Path),
    help="A prepared folder: uses its train.txt and validation.txt.",
)
@click.option("--output", help="Bucket to write the job to (default: --bucket / SENTIMENT_BUCKET).")
@click.option("--job-name", help="Job name (default blazingtext-YYYY-MM-DD-HH-MM-SS).")
@click.option(
    "--hp",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help=f"A hyperparameter (repeatable): {_HP_HELP}.",
)
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(path_type=Path),
    help="SageMaker's hyperparameters.json (a map of strings).",
)
@click.option(
    "--pipeline-defaults",
    is_flag=True,
    help="Start from the pipeline's measured defaults instead of BlazingText's.",
)
@click.pass_context
def command(
    ctx: click.Context,
    train: Path | None,
    validation: Path | None,
    prepared: Path | None,
    output: str | None,
    job_name: str | None,
    pairs: tuple[str, ...],
    hp_file: Path | None,
    pipeline_defaults: bool,
) -> None:
    """Train a text classifier with BlazingText's hyperparameters; writes NAME/output/model.tar.gz.

    Example: sentiment train --input work/prepared --hp epochs=10 --hp vector_dim=10 --hp early_stopping=True
    """
    from sentiment.jobs import run_training
    from sentiment.storage import open_bucket

    settings = ctx.obj.settings
    if prepared is not None:
        train = train or prepared / layout.TRAIN_FILE
        candidate = prepared / layout.VALIDATION_FILE
        if validation is None and candidate.is_file():
            validation = candidate
    if train is None:
        raise UsageError(
            "Give --train FILE or --input PREPARED_FOLDER.",
            hint="Example: sentiment train --input work/prepared",
        )
    given: dict[str, str] = dict(hyperparams.PIPELINE_DEFAULTS) if pipeline_defaults else {}
    if hp_file is not None:
        given.update(hyperparams.read_file(hp_file))
    given.update(hyperparams.parse_cli_pairs(pairs))
    bucket = open_bucket(output or settings.bucket)
    record = run_training(
        train=train,
        validation=validation,
        bucket=bucket,
        job_name=job_name,
        hyperparameters=given,
        settings=settings,
        console=Console(stderr=True),
    )
    click.echo(f"{record['name']} Completed: {bucket.local_path(record['model']['key'])}")
