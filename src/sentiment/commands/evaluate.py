"""`sentiment evaluate`: a report on how good a model is, and where it fails."""

from __future__ import annotations

from pathlib import Path

import click

from sentiment.commands.options import (
    label_map_option,
    layout_option,
    max_reject_ratio_option,
    model_option,
)
from sentiment.commands.tables import reason_counts
from sentiment.labels import LabelMap, Layout


@click.command()
@model_option
@click.option(
    "--test",
    "test",
    required=True,
    help="Prepared test file (__label__x text) or a reviews CSV (a path or s3:// URI).",
)
@click.option(
    "--output",
    help="Report folder or s3:// prefix (default BUCKET/MODEL/evaluation).",
)
@click.option("--baseline", help="Another model to compare with, side by side.")
@layout_option("a reviews CSV")
@max_reject_ratio_option
@label_map_option
@click.pass_context
def command(
    ctx: click.Context,
    model: str,
    test: str,
    output: str | None,
    baseline: str | None,
    layout_name: str | None,
    max_reject_ratio: float | None,
    label_map: LabelMap | None,
) -> None:
    """Accuracy, per-label F1, confusion matrix, calibration, coverage, worst errors; HTML + JSON + PNGs.

    Example: sentiment evaluate --model blazingtext-2026-11-24-10-00-00 --test work/prepared/test.txt
    """
    from rich.console import Console

    from sentiment.evaluate import evaluate_model
    from sentiment.remote import output_folder, stage_input
    from sentiment.storage import open_bucket

    settings = ctx.obj.settings.replace(max_reject_ratio=max_reject_ratio, label_map=label_map)
    bucket = open_bucket(settings.bucket)
    name = Path(model).name.removesuffix(".tar.gz").removesuffix(".bin") or "model"
    target = output or bucket.url(f"{name}/evaluation")
    console = Console(stderr=True)
    test_file = stage_input(test, settings.cache_dir)
    # An s3:// report is written here first, then uploaded with report.json last.
    with output_folder(target, settings.cache_dir, last=("report.json",)) as folder:
        report = evaluate_model(
            model,
            test_file,
            folder,
            baseline=baseline,
            bucket=bucket,
            settings=settings,
            console=console,
            csv_layout=Layout(layout_name) if layout_name else None,
        )
    rows = report["test"]
    console.print(
        f"Scored {rows['examples']:,} of {rows['rows_read']:,} rows of {test} ({rows['source']}); "
        f"dropped: {reason_counts(rows['dropped'])}; rejected: {reason_counts(rows['rejected'])}.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    click.echo(f"Report: {target.rstrip('/')}/report.html")
