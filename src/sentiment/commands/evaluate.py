"""`sentiment evaluate`: a report on how good a model is, and where it fails."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--model",
    required=True,
    help="Job name, model.tar.gz, folder or fastText .bin (also SageMaker's).",
)
@click.option(
    "--test",
    "test",
    required=True,
    type=click.Path(path_type=Path),
    help="Prepared test file (__label__x text) or a reviews CSV.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Report folder (default BUCKET/MODEL/evaluation).",
)
@click.option("--baseline", help="Another model to compare with, side by side.")
@click.pass_context
def command(
    ctx: click.Context, model: str, test: Path, output: Path | None, baseline: str | None
) -> None:
    """Accuracy, per-label F1, confusion matrix, calibration, coverage, worst errors; HTML + JSON + PNGs.

    Example: sentiment evaluate --model blazingtext-2026-11-24-10-00-00 --test work/prepared/test.txt
    """
    from rich.console import Console

    from sentiment.evaluate import evaluate_model
    from sentiment.storage import open_bucket

    settings = ctx.obj.settings
    bucket = open_bucket(settings.bucket)
    name = Path(model).name.removesuffix(".tar.gz").removesuffix(".bin") or "model"
    folder = output or bucket.local_path(f"{name}/evaluation")
    console = Console(stderr=True)
    evaluate_model(
        model, test, folder, baseline=baseline, bucket=bucket, settings=settings, console=console
    )
    click.echo(f"Report: {folder / 'report.html'}")
