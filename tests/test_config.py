"""Settings precedence: flags > environment (SENTIMENT_*) > defaults, typed, checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import REPO
from sentiment.config import Settings
from sentiment.errors import ConfigError
from sentiment.labels import LabelMap


def test_defaults() -> None:
    settings = Settings.load({}, environ={})
    assert settings.bucket == "bucket"
    assert settings.serve_port == 8080 and settings.api_port == 8000
    assert settings.host == "127.0.0.1"
    assert settings.api_keys == () and settings.admin_token == ""


def test_environment_overrides_defaults_and_flags_override_environment() -> None:
    env = {
        "SENTIMENT_BUCKET": "/env/bucket",
        "SENTIMENT_SERVE_PORT": "9000",
        "SENTIMENT_THREADS": "3",
    }
    from_env = Settings.load({}, environ=env)
    assert (
        from_env.bucket == "/env/bucket" and from_env.serve_port == 9000 and from_env.threads == 3
    )
    flagged = Settings.load({"bucket": "/flag/bucket", "serve_port": None}, environ=env)
    assert flagged.bucket == "/flag/bucket"  # the flag wins
    assert flagged.serve_port == 9000  # an unset flag (None) leaves the environment's value


def test_types_are_coerced() -> None:
    env = {
        "SENTIMENT_API_KEYS": "k1, k2,,",
        "SENTIMENT_CACHE_DIR": "~/somewhere",
        "SENTIMENT_CORS_ORIGINS": "*",
    }
    settings = Settings.load({}, environ=env)
    assert settings.api_keys == ("k1", "k2")
    assert settings.cache_dir == Path("~/somewhere").expanduser()
    assert settings.cors_origins == ("*",)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SENTIMENT_SERVE_PORT": "eighty"},
            "SENTIMENT_SERVE_PORT must be a whole number, got 'eighty'",
        ),
        ({"SENTIMENT_THREADS": "2.5"}, "SENTIMENT_THREADS must be a whole number"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.load({}, environ=env)


def test_bad_flag_values_name_the_flag_and_unknown_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="--api-port must be a whole number"):
        Settings.load({"api_port": "x"}, environ={})
    with pytest.raises(ConfigError, match="Unknown setting"):
        Settings.load({"no_such_thing": 1}, environ={})


def test_unrelated_environment_is_ignored() -> None:
    assert Settings.load({}, environ={"BUCKET": "x", "SENTIMENT_": "y"}) == Settings.load(
        {}, environ={}
    )


def test_workers_default_to_all_cores() -> None:
    assert Settings.load({}, environ={}).workers >= 1
    assert Settings.load({"threads": 2}, environ={}).workers == 2


def test_only_config_reads_the_environment() -> None:
    """No module but sentiment.config takes settings from the environment.

    Reads are `os.getenv(...)`, `os.environ.get(...)`, `os.environ[...]` and `... in os.environ`.
    Passing the environment on to child processes (copying it, `setdefault` for Spark's
    workers) is not reading settings and is allowed.
    """

    def is_environ(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )

    offenders = []
    for path in sorted((REPO / "src" / "sentiment").rglob("*.py")):
        if path.name == "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            read = (
                (isinstance(node, ast.Attribute) and node.attr == "getenv")
                or (
                    isinstance(node, ast.Attribute)
                    and node.attr == "get"
                    and is_environ(node.value)
                )
                or (
                    isinstance(node, ast.Subscript)
                    and is_environ(node.value)
                    and isinstance(node.ctx, ast.Load)
                )
                or (isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators))
            )
            if read:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []


def test_settings_handed_to_workers_arrive_whole(tmp_path: Path) -> None:
    """What a server hands its workers (`dumps`, then `inherited` in the worker) is every
    setting: each one is set here to a value other than its default, so a new setting is
    checked as soon as it exists, without a list to keep."""
    import dataclasses

    from sentiment.config import HANDED_OVER

    changed: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        value = getattr(Settings(), f.name)
        if isinstance(value, bool):
            changed[f.name] = not value
        elif isinstance(value, int | float):
            changed[f.name] = value + 3
        elif isinstance(value, tuple):
            changed[f.name] = ("a", "b")
        elif isinstance(value, Path):
            changed[f.name] = tmp_path / f.name
        elif isinstance(value, LabelMap):
            changed[f.name] = LabelMap.parse("1=negative,2=positive")
        else:
            changed[f.name] = f"{value}-{f.name}"
    settings = Settings(**changed)  # type: ignore[arg-type]
    assert all(getattr(settings, n) != getattr(Settings(), n) for n in changed)
    # The environment's own variables do not override what was handed over.
    environ = {HANDED_OVER: settings.dumps(), "SENTIMENT_MODEL": "other", "SENTIMENT_THREADS": "9"}
    assert Settings.inherited(environ) == settings
    assert Settings.inherited({"SENTIMENT_THREADS": "9"}) == Settings(threads=9)
