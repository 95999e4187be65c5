"""The `sentiment` command: a root group that builds settings once, and one module per command.

Commands live in `sentiment.commands.<name>` and are imported only when used, so `sentiment
--help` does not import pyspark, the servers or matplotlib. Errors are printed here and only here:
`Error: <message>` on stderr and the error's exit code, never a traceback for a user mistake.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

import click

from sentiment import __version__
from sentiment.config import Settings
from sentiment.errors import Interrupted, SentimentError

# command name -> module under sentiment.commands that defines `command`
COMMANDS: dict[str, str] = {
    "datasets": "datasets",
    "prepare": "prepare",
    "train": "train",
    "jobs": "jobs",
    "tune": "tune",
    "tuning": "tuning",
    "evaluate": "evaluate",
    "calibrate": "calibrate",
    "serve": "serve",
    "api": "api",
    "up": "up",
    "run": "run",
    "predict": "predict",
    "deploy": "deploy",
}


@dataclass
class AppContext:
    """Shared state the root command builds once for its subcommands."""

    settings: Settings


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, module in COMMANDS.items() if _exists(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None or not _exists(module):
            return None
        command: click.Command = importlib.import_module(f"sentiment.commands.{module}").command
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SentimentError as err:
            click.secho(f"Error: {err.render()}", fg="red", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.secho(f"Error: {Interrupted('Interrupted.').render()}", fg="red", err=True)
            ctx.exit(Interrupted.exit_code)


def _exists(module: str) -> bool:
    return importlib.util.find_spec(f"sentiment.commands.{module}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sentiment")
@click.option(
    "--bucket",
    help="Artifact folder or s3://BUCKET/prefix (env SENTIMENT_BUCKET; default ./bucket).",
)
@click.option("--cache-dir", help="Download/model cache (env SENTIMENT_CACHE_DIR).")
@click.option("--log-level", help="debug, info, warning or error (env SENTIMENT_LOG_LEVEL).")
@click.pass_context
def cli(
    ctx: click.Context, bucket: str | None, cache_dir: str | None, log_level: str | None
) -> None:
    """Sentiment analysis you can host yourself: prepare, train, evaluate, serve, api.

    Example: sentiment run --input ../shared/data/amazon_review_full
    """
    try:
        settings = Settings.load({"bucket": bucket, "cache_dir": cache_dir, "log_level": log_level})
    except SentimentError as err:
        click.secho(f"Error: {err.render()}", fg="red", err=True)
        ctx.exit(err.exit_code)
    ctx.obj = AppContext(settings=settings)


def main() -> None:
    cli(prog_name="sentiment")


if __name__ == "__main__":  # pragma: no cover
    main()
