"""Options that several commands share, declared once: how review files are read (prepare,
evaluate, run) and where records are read from (jobs, tuning)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sentiment.labels import Layout


def layout_option(which: str) -> Callable[[Any], Any]:
    """`--layout full|polarity` for `which` files (detected from every row's label when absent)."""
    return click.option(
        "--layout",
        "layout_name",
        type=click.Choice([x.value for x in Layout]),
        help=f"Layout of {which}: full (stars 1-5) or polarity (1/2) (default: detected from "
        "every row's label).",
    )


max_reject_ratio_option = click.option(
    "--max-reject-ratio",
    type=click.FloatRange(0, 1),
    help="Fail when rows rejected for any one reason exceed this share of the rows read "
    "(default 0.01; env SENTIMENT_MAX_REJECT_RATIO).",
)


bucket_option = click.option(
    "--bucket",
    "bucket_uri",
    metavar="BUCKET",
    help="Bucket to read (default: the --bucket setting).",
)


def json_option(what: str) -> Callable[[Any], Any]:
    """`--json`: print `what` as JSON instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help=f"Print {what} as JSON.")
