"""Options that several commands share, declared once: how review files are read (prepare,
evaluate, run), where records are read from (jobs, tuning) and what SageMaker runs (train,
deploy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from sentiment.errors import ConfigError
from sentiment.labels import LabelMap, Layout


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


class _LabelMapType(click.ParamType):
    name = "LABEL=NAME,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, LabelMap):
            return value
        try:
            return LabelMap.parse(str(value), "--label-map")
        except ConfigError as err:
            self.fail(err.render().removeprefix("--label-map: "), param, ctx)


label_map_option = click.option(
    "--label-map",
    type=_LabelMapType(),
    help="The polarity of a model's own labels, when they are not ours (SageMaker's "
    "BlazingText trained on a raw dataset), as LABEL=NAME pairs: '1=negative,2=positive'; "
    "names: negative, neutral, positive, 1_star..5_stars. Labels exactly 1-2 or 1-5 are read "
    "as Zhang's layouts without it (1 negative, 2 positive; 1-5 stars). "
    "Env SENTIMENT_LABEL_MAP.",
)


# The model of the commands that read one (evaluate, predict, calibrate).
model_option = click.option(
    "--model",
    required=True,
    help="Job name, model.tar.gz, folder or fastText .bin (also SageMaker's).",
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


def sagemaker_options(
    runs: str, instance_type: str, *, when: str = "", role: str = "", image: str = ""
) -> Callable[[Any], Any]:
    """`--role`, `--image`, `--instance-type` and `--region` of what SageMaker `runs` (a
    training job, an endpoint's model). `when` starts each help ("With --on sagemaker: ");
    `role` and `image` end those two's."""

    def described(text: str) -> str:
        return when + text if when else text[0].upper() + text[1:]

    options = [
        click.option("--role", help=described(f"the IAM role ARN {runs} runs as{role}.")),
        click.option(
            "--image",
            default="blazingtext",
            show_default=True,
            help=described(
                f"'blazingtext' (the region's BlazingText image) or an image URI{image}."
            ),
        ),
        click.option(
            "--instance-type",
            default=instance_type,
            show_default=True,
            help=described(f"the instance type {runs} runs on."),
        ),
        click.option(
            "--region", help=described("the AWS region (default: AWS's chain, e.g. AWS_REGION).")
        ),
    ]

    def apply(command: Any) -> Any:
        for option in reversed(options):
            command = option(command)
        return command

    return apply
