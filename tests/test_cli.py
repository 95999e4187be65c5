"""The `sentiment` command itself: commands, help with examples, errors and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conftest import REPO, run_cli
from sentiment import __version__
from sentiment.cli import COMMANDS, cli

SCRIPT = Path(sys.executable).parent / "sentiment"


def _all_commands() -> list[tuple[str, ...]]:
    """Every command path, nested groups included, e.g. ('datasets', 'download')."""
    ctx = click.Context(cli)
    paths: list[tuple[str, ...]] = []
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        paths.append((name,))
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in command.list_commands(ctx)]
    return paths


def test_every_planned_command_exists() -> None:
    ctx = click.Context(cli)
    assert sorted(cli.list_commands(ctx)) == sorted(COMMANDS)


@pytest.mark.parametrize("path", _all_commands(), ids=lambda p: " ".join(p))
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    examples = [
        line.strip() for line in result.output.splitlines() if line.strip().startswith("Example:")
    ]
    assert examples, f"`sentiment {' '.join(path)} --help` has no Example: line"
    assert examples[0].startswith(f"Example: sentiment {path[0]}")


def test_console_script_and_module_agree() -> None:
    via_script = run_cli("--version", script=True)
    via_module = run_cli("--version")
    assert via_script.returncode == via_module.returncode == 0
    assert via_script.stdout == via_module.stdout == f"sentiment, version {__version__}\n"
    top = run_cli("--help", script=True)
    assert top.returncode == 0 and "Example: sentiment run" in top.stdout
    for name in COMMANDS:
        assert name in top.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli("bogus")
    assert result.returncode == 2
    assert "No such command 'bogus'" in result.stderr


def test_bad_setting_in_environment_is_a_clear_error() -> None:
    result = run_cli("datasets", "list", env={"SENTIMENT_SERVE_PORT": "eighty"})
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "Error: SENTIMENT_SERVE_PORT must be a whole number, got 'eighty'."
    )


def test_user_mistakes_print_error_lines_not_tracebacks(tmp_path: Path) -> None:
    missing = run_cli(
        "prepare", "--input", str(tmp_path / "nope"), "--output", str(tmp_path / "out")
    )
    assert missing.returncode == 3
    assert missing.stderr.startswith("Error: ") and "Traceback" not in missing.stderr
    unknown = run_cli("datasets", "download", "imdb")
    assert unknown.returncode == 2
    assert (
        "Unknown dataset 'imdb'. Known datasets: amazon_review_full, amazon_review_polarity"
        in unknown.stderr
    )
    bucket = run_cli("--bucket", "s3://somewhere", "datasets", "list")
    assert (
        bucket.returncode == 2 and "not supported yet" in bucket.stderr
    ) or bucket.returncode == 0


def test_help_does_not_import_heavy_stages() -> None:
    """`sentiment --help` stays fast: Spark, the servers and matplotlib load only when used."""
    code = (
        "import sys; from click.testing import CliRunner; from sentiment.cli import cli;"
        "CliRunner().invoke(cli, ['--help']);"
        "print(sorted(m for m in ('pyspark', 'uvicorn', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
