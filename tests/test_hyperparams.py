"""BlazingText's hyperparameter table: names, defaults, ranges, SageMaker's string map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentiment.errors import UsageError
from sentiment.train import hyperparams as hp


def test_blazingtext_supervised_defaults() -> None:
    assert hp.BLAZINGTEXT_DEFAULTS == {
        "mode": "supervised",
        "epochs": "5",
        "learning_rate": "0.05",
        "min_count": "5",
        "vector_dim": "100",
        "word_ngrams": "2",
        "buckets": "2000000",
        "early_stopping": "False",
        "patience": "4",
        "min_epochs": "5",
    }


def test_sagemaker_string_map() -> None:
    values = hp.resolve(
        {
            "mode": "supervised",
            "epochs": "10",
            "learning_rate": "0.05",
            "early_stopping": "true",
            "vector_dim": "10",
            "min_count": "2",
        }
    )
    assert values["epochs"] == 10 and isinstance(values["epochs"], int)
    assert values["learning_rate"] == 0.05 and values["early_stopping"] is True
    assert values["buckets"] == 2_000_000  # untouched default
    assert hp.format_value(values["early_stopping"]) == "True"
    assert hp.resolve({"early_stopping": "False"})["early_stopping"] is False
    assert hp.resolve({"epochs": "10.0"})["epochs"] == 10


def test_seed_values_are_one_flag_away_and_pipeline_defaults_are_valid() -> None:
    assert hp.resolve(hp.SEED_HYPERPARAMETERS)["vector_dim"] == 10
    resolved = hp.resolve(hp.PIPELINE_DEFAULTS)
    params = resolved.engine
    assert (params.dim, params.lr, params.epochs, params.min_count, params.word_ngrams) == (
        10,
        0.1,
        20,
        2,
        2,
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("epochs", "0", "epochs must be a positive integer, got '0'"),
        ("epochs", "ten", "epochs must be a positive integer, got 'ten'"),
        ("epochs", "2.5", "epochs must be a positive integer"),
        ("learning_rate", "-1", "learning_rate must be a positive float"),
        ("min_count", "-2", "min_count must be a non-negative integer"),
        ("early_stopping", "maybe", "early_stopping must be True or False"),
        ("mode", "skipgram", "Use mode=supervised"),
        ("buckets", "0", "buckets must be a positive integer"),
    ],
)
def test_bad_values_name_the_valid_range(name: str, value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        hp.resolve({name: value})


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(UsageError) as err:
        hp.resolve({"epoch": "3"})
    text = str(err.value)
    assert "Unknown hyperparameter 'epoch'" in text
    assert (
        "BlazingText (supervised) names: mode, epochs, learning_rate, min_count, vector_dim, word_ngrams, buckets"
        in text
    )
    assert "extras of this trainer: threads, seed, loss" in text
    assert "Did you mean 'epochs'?" in text


def test_cli_pairs_and_hyperparameters_json(tmp_path: Path) -> None:
    assert hp.parse_cli_pairs(["epochs=10", " vector_dim = 10 "]) == {
        "epochs": "10",
        "vector_dim": "10",
    }
    with pytest.raises(UsageError, match="--hp takes name=value"):
        hp.parse_cli_pairs(["epochs"])
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps({"epochs": "7", "early_stopping": True}))
    assert hp.resolve(hp.read_file(path))["early_stopping"] is True
    path.write_text("[1]")
    with pytest.raises(UsageError, match="JSON object"):
        hp.read_file(path)
    with pytest.raises(UsageError, match="No hyperparameters file"):
        hp.read_file(tmp_path / "missing.json")
