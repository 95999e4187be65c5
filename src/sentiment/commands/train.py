"""`sentiment train`: a BlazingText-compatible training job (see sentiment.train.job)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from sentiment import layout
from sentiment.errors import UsageError
from sentiment.train import hyperparams


def _show_table(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    table = Table(title="Hyperparameters (BlazingText supervised mode, plus this trainer's extras)")
    for column in ("name", "default", "valid values", "origin", "meaning"):
        table.add_column(column)
    for row in hyperparams.describe_table():
        table.add_row(row["name"], row["default"], row["valid"], row["origin"], row["help"])
    Console().print(table)
    ctx.exit(0)


@click.command()
@click.option(
    "--train",
    type=click.Path(path_type=Path),
    help="Training channel: a file of `__label__<class> text` lines (or a folder holding one).",
)
@click.option(
    "--validation",
    type=click.Path(path_type=Path),
    help="Validation channel, same format (required with early_stopping=True).",
)
@click.option(
    "--input",
    "prepared",
    type=click.Path(path_type=Path),
    help="A prepared folder: its train.txt, and validation.txt if present.",
)
@click.option(
    "--output",
    metavar="BUCKET",
    help="Bucket to write NAME/job.json and NAME/output/model.tar.gz to "
    "(default: the --bucket setting).",
)
@click.option("--job-name", help="A new job name (default: blazingtext-YYYY-MM-DD-HH-MM-SS, UTC).")
@click.option(
    "--hp",
    "pairs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A hyperparameter, BlazingText's name (repeatable); overrides --hyperparameters.",
)
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(path_type=Path),
    help="A SageMaker hyperparameters.json (a JSON object of name: string value).",
)
@click.option(
    "--pipeline-defaults",
    is_flag=True,
    help="Start from the pipeline's defaults (what `sentiment run` uses) instead of BlazingText's.",
)
@click.option(
    "--list-hyperparameters",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_table,
    help="Show every hyperparameter with its default and valid values, then exit.",
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
    """Train a text classifier as a SageMaker BlazingText job would (supervised mode).

    Hyperparameters have BlazingText's names and defaults (epochs=5, learning_rate=0.05,
    min_count=5, vector_dim=100, word_ngrams=2, buckets=2000000, early_stopping=False,
    patience=4, min_epochs=5); extras: threads, seed, loss. Metrics are logged in
    BlazingText's format; the record goes to BUCKET/NAME/job.json and the model to
    BUCKET/NAME/output/model.tar.gz (model.bin, fastText's format, at its root).

    Example: sentiment train --input work/prepared --hp epochs=10 --hp vector_dim=10 --hp early_stopping=True
    """
    from sentiment.storage import open_bucket
    from sentiment.train.job import run_training

    settings = ctx.obj.settings
    if prepared is not None:
        if not prepared.is_dir():
            raise UsageError(
                f"--input {prepared} is not a folder.",
                hint="Give the folder `sentiment prepare` wrote (with train.txt), or use --train FILE.",
            )
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
    accuracy = record["final_metrics"].get("validation_accuracy")
    summary = f" validation accuracy {accuracy:.4f}" if accuracy is not None else ""
    click.echo(f"{record['name']} Completed{summary}: {bucket.local_path(record['model']['key'])}")
