"""How the record commands (`jobs`, `tuning`) print records: as JSON, or as a table of one
row a record, with statuses in colour and durations in h/m/s; and how the commands that read
rows (`evaluate`, `calibrate`) print counts by reason."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click
from rich.console import Console, RenderableType
from rich.table import Table

Record = dict[str, Any]


def print_records(
    records: Sequence[Record],
    *,
    as_json: bool,
    empty: str,
    title: str,
    name: Callable[[Record], str],
    columns: Mapping[str, Callable[[Record], RenderableType]],
) -> None:
    """`records` as JSON, else `empty` when there are none, else a table titled `title`: a row
    a record, its `name`, status, creation and duration, then `columns` (heading: cell)."""
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    if not records:
        click.echo(empty)
        return
    table = Table(title=title)
    for heading in ("name", "status", "created", "duration", *columns):
        table.add_column(heading, overflow="fold")
    for record in records:
        table.add_row(
            name(record),
            status(record.get("status")),
            str(record.get("created") or ""),
            duration(record.get("seconds")),
            *(cell(record) for cell in columns.values()),
        )
    Console(soft_wrap=False, emoji=False).print(table)


def print_heading(console: Console, record: Record) -> None:
    """A record's name, status and, when it failed, why."""
    console.print(f"[bold]{record.get('name')}[/bold]  {status(record.get('status'))}")
    if record.get("failure_reason"):
        console.print(f"reason: {record['failure_reason']}", markup=False)


def status(value: Any) -> str:
    colour = {"Completed": "green", "InProgress": "yellow", "Failed": "red", "Stopped": "magenta"}
    text = str(value or "?")
    return f"[{colour[text]}]{text}[/]" if text in colour else text


def duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    minutes, secs = divmod(float(seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:04.1f}s" if minutes else f"{secs:.1f}s"


def reason_counts(by_reason: Mapping[str, int]) -> str:
    """Counts by reason as "1,204 no_label, 3 bad_row" ("none" when there are none)."""
    return ", ".join(f"{n:,} {reason}" for reason, n in by_reason.items()) or "none"
