"""`sentiment tuning`: the tuning jobs recorded in the bucket (list, describe)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from sentiment.commands.options import bucket_option, json_option
from sentiment.commands.tables import duration, print_heading, print_records


@click.group()
def command() -> None:
    """Tuning jobs in the bucket: list them, describe one (its best trial and every trial).

    Example: sentiment tuning list
    """


@command.command("list")
@bucket_option
@json_option("the records (an array)")
@click.pass_context
def list_(ctx: click.Context, bucket_uri: str | None, as_json: bool) -> None:
    """Tuning jobs, newest first: status, trials finished, the best trial.

    Example: sentiment tuning list
    """
    from sentiment.storage import open_bucket
    from sentiment.train.tuning import list_tunings, local_bucket

    bucket = local_bucket(open_bucket(bucket_uri or ctx.obj.settings.bucket))

    print_records(
        list_tunings(bucket),
        as_json=as_json,
        empty=f"No tuning jobs in {bucket.uri}. Start one with `sentiment tune`.",
        title=f"Tuning jobs in {bucket.uri}",
        name=lambda r: str(r.get("name")),
        columns={
            "trials": lambda r: f"{r.get('trials_finished', 0)}/{r['config']['max_jobs']}",
            "objective": lambda r: str(r["config"]["objective"]),
            "best": lambda r: _best(r.get("best") or {}),
        },
    )


@command.command()
@click.argument("name")
@bucket_option
@json_option("the record and trials")
@click.pass_context
def describe(ctx: click.Context, name: str, bucket_uri: str | None, as_json: bool) -> None:
    """One tuning job: its configuration, best trial and every trial.

    Example: sentiment tuning describe tuning-2026-12-01-01-00-00
    """
    from sentiment.storage import open_bucket
    from sentiment.train.tuning import local_bucket, read_tuning

    record = read_tuning(local_bucket(open_bucket(bucket_uri or ctx.obj.settings.bucket)), name)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    console = Console(emoji=False)  # ranges like 10:100 are not emoji codes
    config = record["config"]
    print_heading(console, record)
    console.print(
        f"{config['strategy']} search, objective {config['objective']}, "
        f"{record.get('trials_finished', 0)}/{config['max_jobs']} trials finished, "
        f"duration {duration(record.get('seconds'))}",
        markup=False,
    )
    console.print(f"ranges: {' '.join(config['ranges'])}", markup=False)
    fixed = " ".join(f"{k}={v}" for k, v in config["fixed"].items())
    console.print(f"fixed: {fixed or '-'}", markup=False)
    console.print(f"best: {_best(record.get('best') or {})}", markup=False)
    table = Table(title="trials")
    for column in ("trial", "job", "state", "objective", "epochs", "seconds", "values"):
        table.add_column(column, overflow="fold")
    best_trial = (record.get("best") or {}).get("trial")
    for t in record["trials"]:
        mark = " *" if t["number"] == best_trial else ""
        table.add_row(
            f"{t['number']}{mark}",
            str(t["job"] or "-"),
            str(t["state"]),
            f"{t['objective']:.4f}" if t["objective"] is not None else "-",
            str(t["epochs"]),
            f"{t['seconds']:.1f}" if t["seconds"] is not None else "-",
            " ".join(f"{k}={_short(v)}" for k, v in t["params"].items()),
        )
    console.print(table)


def _best(best: dict[str, Any]) -> str:
    if not best:
        return "-"
    shown = " ".join(f"{k}={v}" for k, v in best["params"].items())
    return f"trial {best['trial']} ({best['job']}): {best['objective']:.4f} with {shown}"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
