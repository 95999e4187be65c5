"""`sentiment run`: the whole pipeline, prepare → train → evaluate → up, in one command.

Everything lands under one output folder, which is also the run's bucket:

    OUT/prepared/            train.txt, validation.txt, test.txt, manifest.json, rejects/
    OUT/JOB/job.json         the training job's record (per-epoch metrics)
    OUT/JOB/output/model.tar.gz  model.bin, preprocessing.json, calibration.json
    OUT/JOB/evaluation/      report.html, report.json and plots for the prepared test split
    OUT/JOB/evaluation-NAME/ one more report per --eval file

so `sentiment --bucket OUT jobs list` and `sentiment --bucket OUT serve --model JOB` find them.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
from rich.console import Console

from sentiment import layout
from sentiment.commands.options import layout_option, max_reject_ratio_option
from sentiment.config import Settings
from sentiment.labels import Layout, Policy, parse_policy
from sentiment.storage import LocalBucket


@click.command()
@click.option(
    "--input",
    "inputs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Reviews: CSV, folder with train.csv/test.csv, .tgz or dataset name (repeat to merge).",
)
@click.option(
    "--output",
    default="work",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder for everything the run makes.",
)
@click.option(
    "--policy",
    default=Policy.TERNARY.value,
    show_default=True,
    type=click.Choice([p.value for p in Policy]),
    help="Label policy: ternary (1-2 stars negative, 3 neutral, 4-5 positive; polarity rows "
    "add polar labels) trains what the four answers need; binary is the seed exercise's.",
)
@click.option(
    "--hp",
    "hp",
    multiple=True,
    metavar="NAME=VALUE",
    help="Hyperparameter over the pipeline's defaults (repeatable).",
)
@click.option("--job-name", help="Training job name (default blazingtext-<time>).")
@click.option(
    "--eval",
    "evals",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Also evaluate on this test file (prepared or raw CSV); repeatable.",
)
@layout_option("the review CSVs (inputs and --eval files, per file)")
@max_reject_ratio_option
@click.option(
    "--tune",
    "tune_minutes",
    type=click.FloatRange(min=0, min_open=True),
    metavar="MINUTES",
    help="Tune the hyperparameters for MINUTES (a tuning job over learning rate, epochs, "
    "n-grams, dim and min count) and train the final model with the best values.",
)
@click.option("--master", help="Spark master for prepare (default local[*]).")
@click.option(
    "--serve/--no-serve",
    default=True,
    help="End by starting the endpoint and the API (default) or stop after the report.",
)
@click.pass_context
def command(
    ctx: click.Context,
    inputs: tuple[Path, ...],
    output: Path,
    policy: str,
    hp: tuple[str, ...],
    job_name: str | None,
    evals: tuple[Path, ...],
    layout_name: str | None,
    max_reject_ratio: float | None,
    tune_minutes: float | None,
    master: str | None,
    serve: bool,
) -> None:
    """Run the whole pipeline: prepare, train, evaluate, then serve the API and web page.

    Example: sentiment run --input ../shared/data/amazon_review_full --output work
    """
    from sentiment.errors import UsageError
    from sentiment.evaluate import evaluate_model
    from sentiment.prepare import prepare, resolve_inputs
    from sentiment.prepare.job import start_spark
    from sentiment.train.hyperparams import PIPELINE_DEFAULTS, parse_cli_pairs
    from sentiment.train.job import run_training, unique_job_name

    # click made a path of it: "s3://b/x" arrives as "s3:/b/x", which would be a local folder.
    if str(output).split("/", 1)[0].endswith(":"):
        raise UsageError(
            f"--output {output} is not a local folder: `sentiment run` works in one.",
            hint="Run the stages with s3:// paths instead (README, On AWS).",
        )
    settings = ctx.obj.settings.replace(
        bucket=str(output), spark_master=master, max_reject_ratio=max_reject_ratio
    )
    console = Console(stderr=True)
    started = time.monotonic()
    hyperparameters = {**PIPELINE_DEFAULTS, **parse_cli_pairs(hp)}

    console.rule("[bold]1/4 prepare")
    sources = resolve_inputs(
        list(inputs), layout_name, settings.cache_dir, mirror=settings.dataset_mirror or None
    )
    prepared = output / "prepared"
    with console.status("starting Spark"):
        spark = start_spark(settings)
    try:
        with console.status("preparing") as status:
            manifest = prepare(
                sources,
                prepared,
                spark=spark,
                policy=parse_policy(policy),
                max_reject_ratio=settings.max_reject_ratio,
                progress=lambda message: status.update(f"preparing: {message}"),
            )
    finally:
        spark.stop()
    console.print(
        f"prepared {manifest['rows_written']:,} of {manifest['rows_read']:,} rows into {prepared} "
        f"(dropped {sum(manifest['dropped'].values()):,}, rejected {sum(manifest['rejected'].values()):,})"
    )

    console.rule("[bold]2/4 train")
    bucket = LocalBucket(output)
    tuning_job = None
    if tune_minutes is not None:
        tuning_job, hyperparameters = _tune(
            prepared, bucket, settings, console, hyperparameters, parse_cli_pairs(hp), tune_minutes
        )
    name = unique_job_name(bucket, job_name)
    record = run_training(
        train=prepared / layout.TRAIN_FILE,
        validation=prepared / layout.VALIDATION_FILE,
        bucket=bucket,
        job_name=name,
        hyperparameters=hyperparameters,
        settings=settings,
        console=console,
        tuning_job=tuning_job,
    )
    console.print(f"trained {name}: {bucket.local_path(layout.model_archive_key(name))}")

    console.rule("[bold]3/4 evaluate")
    reports = [(prepared / layout.TEST_FILE, output / name / "evaluation")]
    reports += [(path, output / name / f"evaluation-{_stem(path)}") for path in evals]
    for test, folder in reports:
        report = evaluate_model(
            name,
            test,
            folder,
            bucket=bucket,
            settings=settings,
            console=console,
            csv_layout=Layout(layout_name) if layout_name else None,
        )
        console.print(
            f"accuracy {report['metrics']['accuracy']:.4f} on {test}: report at {folder / 'report.html'}"
        )

    minutes = (time.monotonic() - started) / 60
    best = record.get("final_metrics", {}).get("validation_accuracy")
    console.print(f"pipeline done in {minutes:.1f} min; validation accuracy {best}")
    if not serve:
        return
    console.rule("[bold]4/4 serve")
    from sentiment.api.up import run_stack

    run_stack(name, settings=settings, console=console)


def _tune(
    prepared: Path,
    bucket: LocalBucket,
    settings: Settings,
    console: Console,
    defaults: dict[str, str],
    given: dict[str, str],
    minutes: float,
) -> tuple[str, dict[str, str]]:
    """Run a tuning job over the default ranges (less those --hp fixes) for `minutes`; return
    its name and the hyperparameters of the final model (the defaults and the best values)."""
    from sentiment.train import tuning

    validation = prepared / layout.VALIDATION_FILE
    ranges = tuple(r for r in map(tuning.parse_range, tuning.DEFAULT_RANGES) if r.name not in given)
    config = tuning.TuningConfig(
        train=str(prepared / layout.TRAIN_FILE),
        validation=str(validation),
        ranges=ranges,
        fixed={k: v for k, v in defaults.items() if k not in {r.name for r in ranges}},
        objective=tuning.default_objective(validation),
        max_jobs=1000,  # the time budget ends it
        max_seconds=minutes * 60,
    )
    record = tuning.run_tuning(config, bucket=bucket, name=None, settings=settings, console=console)
    best = record["best"]
    console.print(
        f"tuned {record['name']}: best trial {best['trial']} {config.objective} "
        f"{best['objective']:.4f} of {record['trials_finished']} trials"
    )
    return record["name"], tuning.best_hyperparameters(record)


def _stem(path: Path) -> str:
    parent = path.parent.name
    return f"{parent}-{path.stem}" if parent else path.stem
