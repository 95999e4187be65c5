"""`sentiment jobs`: training jobs recorded in the bucket."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table


@click.group()
def command() -> None:
    """Training jobs in the bucket: list them, describe one.

    Example: sentiment jobs list
    """


@command.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Jobs, newest first, with status, duration and best validation accuracy.

    Example: sentiment jobs list
    """
    from sentiment.jobs import list_jobs
    from sentiment.storage import open_bucket

    bucket = open_bucket(ctx.obj.settings.bucket)
    table = Table(title=f"Training jobs in {bucket.uri}")
    for column in (
        "name",
        "status",
        "created",
        "seconds",
        "epochs",
        "validation accuracy",
        "reason",
    ):
        table.add_column(column)
    for record in list_jobs(bucket):
        accuracies = [
            e["validation_accuracy"]
            for e in record.get("epochs", [])
            if e.get("validation_accuracy") is not None
        ]
        table.add_row(
            record.get("name", "?"),
            record.get("status", "?"),
            record.get("created", ""),
            f"{record.get('seconds') or 0:.1f}",
            str(len(record.get("epochs", []))),
            f"{max(accuracies):.4f}" if accuracies else "-",
            (record.get("failure_reason") or "")[:60],
        )
    Console().print(table)


@command.command()
@click.argument("name")
@click.pass_context
def describe(ctx: click.Context, name: str) -> None:
    """The whole record of one job, as JSON.

    Example: sentiment jobs describe blazingtext-2026-11-24-10-00-00
    """
    from sentiment.jobs import read_job
    from sentiment.storage import open_bucket

    click.echo(json.dumps(read_job(open_bucket(ctx.obj.settings.bucket), name), indent=2))
