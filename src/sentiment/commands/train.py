"""`sentiment train`: a BlazingText-compatible training job (see sentiment.train.job)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from sentiment import layout
from sentiment.commands.options import sagemaker_options
from sentiment.errors import UsageError
from sentiment.train import hyperparams

if TYPE_CHECKING:
    from sentiment.config import Settings
    from sentiment.storage import Bucket


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
    help="Training channel: a file of `__label__<class> text` lines (or a folder holding one).",
)
@click.option(
    "--validation",
    help="Validation channel, same format (required with early_stopping=True).",
)
@click.option(
    "--input",
    "prepared",
    help="A prepared folder (or s3:// prefix): its train.txt, and validation.txt if present.",
)
@click.option(
    "--on",
    "where",
    type=click.Choice(["local", "sagemaker"]),
    default="local",
    show_default=True,
    help="Train here, or as a SageMaker training job (BlazingText's image; S3 inputs and bucket).",
)
@sagemaker_options("the training job", "ml.c5.xlarge", when="With --on sagemaker: ")
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
    train: str | None,
    validation: str | None,
    prepared: str | None,
    where: str,
    role: str | None,
    instance_type: str,
    region: str | None,
    image: str,
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

    Any path may be an s3:// URI. --on sagemaker runs the job on SageMaker with BlazingText's
    image (inputs and --bucket in S3), streams its status and records it like a local job.

    Example: sentiment train --input work/prepared --hp epochs=10 --hp vector_dim=10 --hp early_stopping=True
    """
    from sentiment.storage import is_remote, open_bucket

    settings = ctx.obj.settings
    if prepared is not None:
        if is_remote(prepared):
            folder = open_bucket(prepared)
            train = train or folder.url(layout.TRAIN_FILE)
            if validation is None and folder.exists(layout.VALIDATION_FILE):
                validation = folder.url(layout.VALIDATION_FILE)
        else:
            local = Path(prepared)
            if not local.is_dir():
                raise UsageError(
                    f"--input {prepared} is not a folder.",
                    hint="Give the folder `sentiment prepare` wrote (with train.txt), or use --train FILE.",
                )
            train = train or str(local / layout.TRAIN_FILE)
            candidate = local / layout.VALIDATION_FILE
            if validation is None and candidate.is_file():
                validation = str(candidate)
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
    if where == "sagemaker":
        record = _on_sagemaker(
            train, validation, bucket, job_name, given, role, instance_type, region, image
        )
    else:
        record = _here(train, validation, bucket, job_name, given, settings)
    accuracy = record["final_metrics"].get("validation_accuracy")
    summary = f" validation accuracy {accuracy:.4f}" if accuracy is not None else ""
    click.echo(f"{record['name']} Completed{summary}: {bucket.url(record['model']['key'])}")


def _here(
    train: str,
    validation: str | None,
    bucket: Bucket,
    job_name: str | None,
    given: dict[str, str],
    settings: Settings,
) -> dict[str, Any]:
    """A local training job; S3 inputs are staged in, and an S3 bucket gets the job published
    whole once it ended (its model first, its record last)."""
    from sentiment.remote import job_bucket, publish_job, stage_input
    from sentiment.storage import is_remote
    from sentiment.train.job import refuse_taken_name, run_training

    cache = settings.cache_dir
    inputs = {"train": train} | ({"validation": validation} if validation else {})
    # A local bucket reserves the name itself; a remote one is checked before any training.
    if job_name and is_remote(bucket.uri):
        refuse_taken_name(bucket, job_name)
    with job_bucket(bucket, cache) as local:
        try:
            return run_training(
                train=stage_input(train, cache),
                validation=stage_input(validation, cache) if validation else None,
                bucket=local,
                job_name=job_name,
                hyperparameters=given,
                settings=settings,
                console=Console(stderr=True),
            )
        finally:
            for name in local.children() if local is not bucket else []:
                publish_job(local, bucket, name, inputs=inputs)


def _on_sagemaker(
    train: str,
    validation: str | None,
    bucket: Bucket,
    job_name: str | None,
    given: dict[str, str],
    role: str | None,
    instance_type: str,
    region: str | None,
    image: str,
) -> dict[str, Any]:
    from sentiment.aws import client
    from sentiment.aws.sagemaker import TrainingSpec
    from sentiment.aws.sagemaker import train as train_job
    from sentiment.train.job import default_job_name

    if not role:
        raise UsageError(
            "--on sagemaker needs --role: the ARN of an IAM role SageMaker may assume.",
            hint="Example: --role arn:aws:iam::123456789012:role/SageMakerExecution",
        )
    spec = TrainingSpec(
        name=job_name or default_job_name(),
        train_uri=train,
        validation_uri=validation,
        output=bucket,
        hyperparameters=given,
        role=role,
        instance_type=instance_type,
        image=image,
    )
    console = Console(stderr=True, log_path=False)
    return train_job(
        spec, client=client("sagemaker", region), logs=client("logs", region), log=console.log
    )
