"""Shared fixtures: the real data beside the repository, free ports, a small real model."""

from __future__ import annotations

import csv
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FULL = SHARED_DATA / "amazon_review_full"
POLARITY = SHARED_DATA / "amazon_review_polarity"


def pytest_configure(config: pytest.Config) -> None:
    if not (FULL / "train.csv").is_file() or not (POLARITY / "train.csv").is_file():
        raise pytest.UsageError(
            f"The shared review samples are missing: expected {SHARED_DATA} beside the repository "
            "(../shared/data with amazon_review_full/ and amazon_review_polarity/)."
        )


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


def read_reviews(path: Path, limit: int | None = None) -> list[tuple[str, str, str]]:
    """Rows (label, title, body) of a shared CSV, as Python's csv module reads them."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [(r[0], r[1], r[2]) for r in csv.reader(fh)]
    return rows[:limit] if limit else rows


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real fastText supervised model (binary policy) trained on part of the polarity sample.

    Trained by the fastText reference library so that inference tests do not depend on our
    trainer; the trainer's own tests check that its models load and predict the same way.
    """
    import fasttext

    from sentiment.labels import Layout, Policy, map_label, with_prefix
    from sentiment.text import compose, normalize

    folder = tmp_path_factory.mktemp("tiny-model")
    lines = []
    for label, title, body in read_reviews(POLARITY / "train.csv", limit=6000):
        name = map_label(Layout.POLARITY, label, Policy.BINARY)
        assert name is not None
        lines.append(f"{with_prefix(name)} {normalize(compose(title, body))}")
    train = folder / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    model = fasttext.train_supervised(str(train), epoch=5, dim=10, wordNgrams=2, minCount=2, seed=1, thread=1, verbose=0)
    model.save_model(str(folder / "model.bin"))
    yield folder
