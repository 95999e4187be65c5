"""`sentiment datasets`: the public Amazon review datasets (list, download, path)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from sentiment import datasets as ds
from sentiment.config import Settings


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = ctx.obj.settings
    return settings


@click.group()
def command() -> None:
    """The public Amazon review datasets fast.ai publishes: list, download, locate.

    Example: sentiment datasets download amazon_review_polarity
    """


@command.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """Known datasets, their size and whether they are in the cache.

    Example: sentiment datasets list
    """
    settings = _settings(ctx)
    table = Table(title="Public datasets")
    for column in ("name", "layout", "size", "cached", "url"):
        table.add_column(column)
    for spec in ds.DATASETS.values():
        spec = ds.get_spec(spec.name, mirror=settings.dataset_mirror or None)
        archive = ds.cached_archive(spec, settings.cache_dir)
        size = f"{spec.size / 1e6:,.0f} MB" if spec.size else "?"
        table.add_row(
            spec.name, spec.layout, size, str(archive) if archive.is_file() else "no", spec.url
        )
    Console().print(table)


@command.command()
@click.argument("name")
@click.option(
    "--mirror",
    help="Base URL to download from instead of fast.ai's (env SENTIMENT_DATASET_MIRROR).",
)
@click.option("--sha256", help="Also check the archive's full SHA-256.")
@click.option(
    "--no-size-check",
    is_flag=True,
    help="Accept a size other than the published one (for a mirror's repack).",
)
@click.option("--force", is_flag=True, help="Download again even if cached.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the server.")
@click.option(
    "--retries", default=3, show_default=True, help="Resumed retries after a dropped connection."
)
@click.pass_context
def download(
    ctx: click.Context,
    name: str,
    mirror: str | None,
    sha256: str | None,
    no_size_check: bool,
    force: bool,
    timeout: float,
    retries: int,
) -> None:
    """Download a dataset archive into the cache (resumable, size and checksum verified).

    Example: sentiment datasets download amazon_review_full
    """
    settings = _settings(ctx)
    spec = ds.get_spec(name, mirror=mirror or settings.dataset_mirror or None)
    if sha256 or no_size_check:
        from dataclasses import replace

        spec = replace(
            spec,
            sha256=sha256 or spec.sha256,
            size=None if no_size_check else spec.size,
            md5_head=None if no_size_check else spec.md5_head,
        )
    with ds.progress_bar(spec.archive) as progress:
        archive = ds.fetch(
            spec,
            settings.cache_dir,
            force=force,
            progress=progress,
            timeout=timeout,
            retries=retries,
        )
    folder = ds.extract_dataset(archive, settings.cache_dir)
    click.echo(f"{spec.name}: {archive} -> {folder}")


@command.command()
@click.argument("ref")
@click.option(
    "--download/--no-download", default=False, help="Download a named dataset if it is not cached."
)
@click.pass_context
def path(ctx: click.Context, ref: str, download: bool) -> None:
    """Print the folder with train.csv/test.csv for a dataset name, .tgz or folder.

    Example: sentiment datasets path amazon_review_polarity
    """
    settings = _settings(ctx)
    folder = ds.resolve_dataset(
        Path(ref) if Path(ref).exists() else ref,
        settings.cache_dir,
        download=download,
        mirror=settings.dataset_mirror or None,
    )
    click.echo(str(folder))
