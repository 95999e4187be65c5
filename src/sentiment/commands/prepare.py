"""`sentiment prepare`: Amazon review CSVs -> BlazingText train/validation/test files."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from sentiment import layout
from sentiment.commands.options import layout_option, max_reject_ratio_option
from sentiment.labels import Policy, parse_policy
from sentiment.reviews import RowOptions
from sentiment.text import Cleaning


@click.command()
@click.option(
    "--input",
    "inputs",
    multiple=True,
    required=True,
    help="CSV file, folder with train.csv/test.csv, dataset .tgz or dataset name, or an s3:// "
    "URI of one of these (repeat to merge).",
)
@click.option("--output", required=True, help="Output folder or s3://BUCKET/prefix.")
@click.option(
    "--policy",
    default=Policy.BINARY.value,
    type=click.Choice([p.value for p in Policy]),
    help="Label policy (default binary).",
)
@layout_option("the input CSVs")
@max_reject_ratio_option
@click.option("--master", help="Spark master URL (default local[*]; env SENTIMENT_SPARK_MASTER).")
@click.option(
    "--s3a/--no-s3a",
    "s3a",
    default=None,
    help="Spark reads and writes s3:// paths itself (as s3a://) instead of staging them through "
    "the cache (env SENTIMENT_SPARK_S3A; always so on a cluster --master).",
)
@click.option("--seed", default=1, show_default=True, help="Seed of the validation split.")
@click.option(
    "--validation-fraction",
    default=0.1,
    show_default=True,
    help="Share of train carved out as validation.",
)
@click.option("--min-tokens", default=1, show_default=True, help="Drop texts with fewer tokens.")
@click.option("--no-title", is_flag=True, help="Leave the review title out of the text.")
@click.option(
    "--title-weight",
    default=3,
    show_default=True,
    type=click.IntRange(1, 10),
    help="Repeat the title this many times in training text (1 = once, as the seed exercise).",
)
@click.option("--no-dedupe", is_flag=True, help="Keep exact duplicate texts.")
@click.option("--keep-case", is_flag=True, help="Do not lower-case.")
@click.option("--keep-numbers", is_flag=True, help="Do not replace numbers with _num_.")
@click.option("--keep-urls", is_flag=True, help="Do not replace URLs with _url_.")
@click.option(
    "--no-negation", is_flag=True, help="Do not mark the words after not/no/never/n't with not_."
)
@click.option(
    "--emoticons", is_flag=True, help="Map emoticons and emoji of a side to _emo_pos_/_emo_neg_."
)
@click.option(
    "--elongations", is_flag=True, help="Cut sooo to soo + _elong_; runs of !/? to one token."
)
@click.pass_context
def command(
    ctx: click.Context,
    inputs: tuple[str, ...],
    output: str,
    policy: str,
    layout_name: str | None,
    max_reject_ratio: float | None,
    master: str | None,
    s3a: bool | None,
    seed: int,
    validation_fraction: float,
    min_tokens: int,
    no_title: bool,
    title_weight: int,
    no_dedupe: bool,
    keep_case: bool,
    keep_numbers: bool,
    keep_urls: bool,
    no_negation: bool,
    emoticons: bool,
    elongations: bool,
) -> None:
    """Clean and label reviews with Spark into train.txt, validation.txt, test.txt + manifest.json.

    Example: sentiment prepare --input ../shared/data/amazon_review_full --output bucket/prepared

    On S3: sentiment prepare --s3a --input s3://B/reviews/full --output s3://B/prepared
    """
    from rich.console import Console

    from sentiment.errors import UsageError
    from sentiment.prepare import prepare, resolve_inputs
    from sentiment.prepare.job import start_spark
    from sentiment.prepare.s3a import is_local_master, spark_uri
    from sentiment.remote import stage_input

    if not 0 <= validation_fraction < 1:
        raise UsageError("--validation-fraction must be at least 0 and below 1.")
    settings = ctx.obj.settings.replace(
        spark_master=master, max_reject_ratio=max_reject_ratio, spark_s3a=s3a
    )
    console = Console(stderr=True)
    # Spark reads and writes S3 itself (s3a://) on a cluster, when told to, or when a path says
    # s3a://; else (local mode) S3 inputs are staged into the cache through the storage seam and
    # an s3:// output is written here, then uploaded, manifest last. An S3 archive is staged.
    itself = settings.spark_s3a or not is_local_master(settings.spark_master)

    def by_spark(uri: str) -> bool:
        return uri.startswith("s3a://") or (itself and uri.startswith(("s3://", "s3n://")))

    given = [
        spark_uri(i) if by_spark(i) and not i.endswith((".tgz", ".tar.gz")) else i for i in inputs
    ]
    staged = [i if i.startswith("s3a://") else stage_input(i, settings.cache_dir) for i in given]
    target = spark_uri(output) if by_spark(output) else None
    if target is not None:
        from sentiment.aws.s3 import S3Bucket

        S3Bucket(target).check()  # before Spark starts: a missing bucket is said at once
    sources = resolve_inputs(
        staged, layout_name, settings.cache_dir, mirror=settings.dataset_mirror or None
    )
    options = RowOptions(
        cleaning=Cleaning(
            lowercase=not keep_case,
            numbers=not keep_numbers,
            urls=not keep_urls,
            negation=not no_negation,
            emoticons=emoticons,
            elongations=elongations,
        ),
        include_title=not no_title,
        title_weight=title_weight,
        min_tokens=min_tokens,
        dedupe=not no_dedupe,
    )
    s3a_paths = target is not None or any(isinstance(s.path, str) for s in sources)
    with console.status("starting Spark"):
        spark = start_spark(settings, s3a=s3a_paths)
    try:
        with (
            _output(target, output, settings.cache_dir) as folder,
            console.status("preparing") as status,
        ):
            manifest = prepare(
                sources,
                folder,
                spark=spark,
                policy=parse_policy(policy),
                options=options,
                seed=seed,
                validation_fraction=validation_fraction,
                max_reject_ratio=settings.max_reject_ratio,
                progress=lambda msg: _report(status, console, msg),
            )
    finally:
        spark.stop()
    click.echo(
        f"Wrote {manifest['rows_written']:,} of {manifest['rows_read']:,} rows to {output} "
        f"({manifest['elapsed_seconds']:.1f}s); dropped {manifest['dropped']}, "
        f"rejected {manifest['rejected']}."
    )


@contextlib.contextmanager
def _output(target: str | None, output: str, cache_dir: Path) -> Iterator[Path | str]:
    """Where prepare writes: the s3a:// `target` that Spark writes itself, else a folder (a
    local one published to `output` when that is in S3)."""
    if target is not None:
        yield target
        return
    from sentiment.remote import output_folder

    with output_folder(output, cache_dir, last=(layout.MANIFEST,)) as folder:
        yield folder


def _report(status: Any, console: Any, message: str) -> None:
    status.update(message)
    console.log(message)
