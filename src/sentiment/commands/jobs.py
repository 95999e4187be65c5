"""`sentiment jobs`: the training jobs recorded in the bucket (list, describe)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sentiment.commands.options import bucket_option, json_option
from sentiment.commands.tables import Record, duration, print_heading, print_records


@click.group()
def command() -> None:
    """Training jobs in the bucket: list them, describe one.

    Example: sentiment jobs list
    """


@command.command("list")
@bucket_option
@json_option("the records (an array)")
@click.pass_context
def list_(ctx: click.Context, bucket_uri: str | None, as_json: bool) -> None:
    """Jobs, newest first: status, created, duration, epochs, best validation accuracy.

    Example: sentiment jobs list
    """
    from sentiment.records import best_validation_accuracy, list_jobs
    from sentiment.storage import open_bucket

    bucket = open_bucket(bucket_uri or ctx.obj.settings.bucket)

    print_records(
        list_jobs(bucket),
        as_json=as_json,
        empty=f"No training jobs in {bucket.uri}. Train one with `sentiment train`.",
        title=f"Training jobs in {bucket.uri}",
        name=_name,
        columns={
            "epochs": lambda r: str(len(r.get("epochs") or [])),
            "best validation": lambda r: _num(best_validation_accuracy(r)),
            "reason": lambda r: Text(str(r.get("failure_reason") or "")),
        },
    )


def _name(record: Record) -> str:
    tuning = record.get("tuning_job")
    return str(record.get("name", "?")) + (f"\n(tuning job {tuning})" if tuning else "")


@command.command()
@click.argument("name")
@bucket_option
@json_option("the whole record")
@click.pass_context
def describe(ctx: click.Context, name: str, bucket_uri: str | None, as_json: bool) -> None:
    """One job: status, hyperparameters, inputs, per-epoch metrics and the model.

    Example: sentiment jobs describe blazingtext-2026-11-24-10-00-00 --json
    """
    from sentiment.records import read_job
    from sentiment.storage import open_bucket

    record = read_job(open_bucket(bucket_uri or ctx.obj.settings.bucket), name)
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    _pretty(record)


def _pretty(record: dict[str, Any]) -> None:
    console = Console()
    print_heading(console, record)
    console.print(
        f"created {record.get('created')}  ended {record.get('ended') or '-'}  "
        f"duration {duration(record.get('seconds'))}"
    )
    if record.get("tuning_job"):
        console.print(f"tuning job: {record['tuning_job']}", markup=False)
    hp = " ".join(f"{k}={v}" for k, v in (record.get("hyperparameters") or {}).items())
    extras = " ".join(f"{k}={v}" for k, v in (record.get("extras") or {}).items())
    console.print(f"hyperparameters: {hp}", markup=False)
    console.print(f"extras: {extras or '-'}", markup=False)
    for channel, info in (record.get("inputs") or {}).items():
        console.print(f"{channel}: {_file(info, 'path')}", markup=False)
    dictionary = record.get("dictionary")
    if dictionary:
        console.print(
            f"dictionary: {dictionary.get('nwords')} words, {dictionary.get('ntokens')} tokens, "
            f"labels {' '.join(dictionary.get('labels') or [])}",
            markup=False,
        )
    epochs = record.get("epochs") or []
    if epochs:
        table = Table(title="epochs")
        for column in ("epoch", "train acc", "validation acc", "loss", "words/s", "seconds", "lr"):
            table.add_column(column, justify="right")
        best = record.get("best_epoch")
        for e in epochs:
            mark = " *" if e.get("epoch") == best else ""
            table.add_row(
                f"{e.get('epoch')}{mark}",
                _num(e.get("train_accuracy")),
                _num(e.get("validation_accuracy")),
                _num(e.get("loss")),
                f"{e.get('words_per_sec') or 0:,}",
                _num(e.get("seconds"), 2),
                _num(e.get("lr"), 6),
            )
        console.print(table)
        console.print(
            f"best epoch {best or '-'}; model from epoch {record.get('model_epoch') or '-'}"
            f"{'; stopped early' if record.get('stopped_early') else ''}"
        )
    final = record.get("final_metrics") or {}
    console.print(
        f"final: train accuracy {_num(final.get('train_accuracy'))}, "
        f"validation accuracy {_num(final.get('validation_accuracy'))}"
    )
    model = record.get("model")
    if model:
        console.print(f"model: {_file(model, 'key')}", markup=False)


def _file(info: dict[str, Any], name: str) -> str:
    """A recorded file: where, size and the start of its checksum."""
    return f"{info.get(name)} ({info.get('bytes')} bytes, sha256 {str(info.get('sha256'))[:16]}…)"


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"
