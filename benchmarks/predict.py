"""`sentiment predict` throughput: lines/s from file to JSON answers, against the fastText
library's predict on the same lines, same run.

`python -m benchmarks.predict [--quick] [--lines N]` prints, for two kinds of short review:
- titles: the shared samples' review titles (median 23 characters, mostly one sentence);
- short bodies: the shared samples' review texts of at most 200 characters (several sentences
  each: their sentences are scored too, for the mixed answer, where they can change it:
  `sentiment.answers.SENTENCE_FLOOR`);
with a real model (our trainer, the seed's hyperparameters, calibrated as a training job
does), the lines/s of `sentiment predict` (the whole command, a child process: start, model load,
reading, the four answers, orjson, writing; its worker processes use every core), of
`Model.answers` in one process (the library, no I/O), and of the baseline, the fastText
library's `predict` (k=1, one process, its own whitespace tokens: no normalization, no
sentences, no calibration, no JSON), and the ratios. Target (issue 13.5): >= 100k lines/s on
2 cores for short reviews.

`--against SRC [--rounds N]` runs `sentiment predict` of another source tree too (its `src`
folder with its extensions built, e.g. a worktree of an earlier commit), alternating with this
tree's on the same files N times, and prints the lines/s of each run and the medians' ratio.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.loadgen import ROOT, SHARED, benchmark_model

OUT = ROOT / "benchmarks" / "out" / "predict"


def review_lines(kind: str) -> list[str]:
    """One text a line from both shared datasets: titles, or bodies of <= 200 characters."""
    found = []
    for dataset in ("amazon_review_polarity", "amazon_review_full"):
        for split in ("train", "test"):
            with open(SHARED / dataset / f"{split}.csv", newline="", encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    text = row[1] if kind == "titles" else row[2]
                    if kind == "titles" or len(text) <= 200:
                        found.append(text.replace("\\n", " ").replace("\n", " "))
    return found


def input_file(kind: str, lines: int) -> tuple[Path, list[str]]:
    texts = review_lines(kind)
    texts = (texts * (lines // len(texts) + 1))[:lines]
    path = OUT / f"{kind}-{lines}.txt"
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return path, texts


def calibrated_model() -> Path:
    """The HTTP benchmarks' model with the calibration a training job fits (on the prepared
    polarity test here), as `sentiment predict` meets models: answers are calibrated."""
    import json
    import shutil

    from benchmarks.train import prepared
    from sentiment.calibration import fit_file
    from sentiment.labels import Layout, Policy
    from sentiment.model import load_model_bin

    folder = OUT / "model"
    cached = folder / "calibration.json"
    if cached.exists() and json.loads(cached.read_text()).get("inputs") == "log":
        return folder / "model.bin"  # (one fitted before "log" inputs is fitted again)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(benchmark_model(), folder / "model.bin")
    test = prepared("amazon_review_polarity", Layout.POLARITY, Policy.BINARY)["test"]
    calibration = fit_file(load_model_bin(folder / "model.bin"), test)
    (folder / "calibration.json").write_text(json.dumps(calibration.to_dict()))
    return folder / "model.bin"


def run_cli(model: Path, path: Path, lines: int, src: Path = ROOT / "src") -> float:
    out = path.with_suffix(".jsonl")
    started = time.perf_counter()
    with open(out, "wb") as fh:
        subprocess.run(
            [sys.executable, "-m", "sentiment", "predict", "--model", str(model), str(path)],
            stdout=fh,
            check=True,
            cwd=ROOT,
            env=os.environ | {"PYTHONPATH": str(src)},
        )
    elapsed = time.perf_counter() - started
    with open(out, "rb") as fh:
        assert sum(1 for _ in fh) == lines
    return lines / elapsed


def run_library(model: Path, texts: list[str]) -> float:
    from sentiment.model import load_model_bin

    loaded = load_model_bin(model)
    sample = texts[:200_000]
    started = time.perf_counter()
    for i in range(0, len(sample), 2000):
        loaded.answers(sample[i : i + 2000])
    return len(sample) / (time.perf_counter() - started)


def run_fasttext(model: Path, texts: list[str]) -> float:
    import fasttext

    ft = fasttext.load_model(str(model))
    started = time.perf_counter()
    for i in range(0, len(texts), 2000):
        ft.predict(texts[i : i + 2000], k=1)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200k lines instead of 1M")
    parser.add_argument("--lines", type=int, default=None)
    parser.add_argument("--against", type=Path, default=None, help="another tree's src folder")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --against")
    args = parser.parse_args()
    lines = args.lines or (200_000 if args.quick else 1_000_000)
    model = calibrated_model()
    print(f"model {model}, {lines:,} lines, cores {os.cpu_count()}, load {os.getloadavg()}")
    if args.against is not None:
        compare(model, lines, args.against.resolve(), args.rounds)
        return
    for kind in ("titles", "short bodies"):
        path, texts = input_file(kind.replace(" ", "-"), lines)
        ours = run_cli(model, path, lines)
        library = run_library(model, texts)
        baseline = run_fasttext(model, texts)
        print(
            f"{kind:>12}: sentiment predict {ours:9,.0f} lines/s "
            f"({'meets' if ours >= 100_000 else 'below'} the 100k target); "
            f"Model.answers in one process {library:9,.0f}/s; "
            f"fastText predict {baseline:9,.0f}/s",
            flush=True,
        )
        print(
            f"{'':>12}  predict / fastText = {ours / baseline:.2f}x, "
            f"predict / one-process answers = {ours / library:.2f}x"
        )
    print(f"load after: {os.getloadavg()}")


def compare(model: Path, lines: int, against: Path, rounds: int) -> None:
    """`sentiment predict` of this tree and of `against`, alternated (see the module)."""
    trees = (ROOT / "src", against)
    for kind in ("titles", "short bodies"):
        path, _ = input_file(kind.replace(" ", "-"), lines)
        runs: dict[Path, list[float]] = {tree: [] for tree in trees}
        for round_ in range(rounds):
            for tree in trees if round_ % 2 == 0 else trees[::-1]:
                runs[tree].append(run_cli(model, path, lines, tree))
                print(f"{kind:>12}: {tree}  {runs[tree][-1]:9,.0f} lines/s", flush=True)
        medians = [statistics.median(runs[tree]) for tree in trees]
        for tree, median in zip(trees, medians, strict=True):
            figures = ", ".join(f"{run / 1000:.0f}k" for run in runs[tree])
            print(f"{kind:>12}: {tree!s:50} {figures} (median {median:,.0f} lines/s)")
        print(f"{'':>12}  this tree / the other: {medians[0] / medians[1]:.2f}x")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
