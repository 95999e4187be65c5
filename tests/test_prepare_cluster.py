"""prepare on a real multi-process Spark: `local-cluster` runs a master and two worker JVMs.

Run through the CLI in a subprocess, because one Python process holds one SparkContext and the
other tests share a local-mode session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FULL, REPO
from sentiment import layout
from sentiment.labels import Layout, Policy
from sentiment.reviews import clean_file

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_local_cluster_output_matches_the_python_path(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentiment",
            "prepare",
            "--input",
            str(FULL / "test.csv"),
            "--output",
            str(out),
            "--policy",
            "ternary",
            "--master",
            "local-cluster[2,1,1024]",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / layout.MANIFEST).read_text())
    expected = {
        f"__label__{label} {text}"
        for _raw, label, text, reason in clean_file(FULL / "test.csv", Layout.FULL, Policy.TERNARY)
        if reason is None
    }
    written = set((out / layout.TEST_FILE).read_text().splitlines())
    assert written == expected
    assert manifest["counts"]["test"].keys() == {"negative", "neutral", "positive"}
