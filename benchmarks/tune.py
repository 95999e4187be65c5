"""Tuning: `sentiment tune` against fastText's -autotune, given the same time, in one run.

`python -m benchmarks.tune [--max-jobs 30] [--threads 2] [--quick]` prints:
- ours: a tuning job of `--max-jobs` trials (Bayesian, pruned; the default ranges of
  `sentiment run --tune`) on the shared polarity sample (binary policy; validation: the last
  15% of its train split), its wall time (target: 30 trials within 10 minutes on 2 cores) and
  the best trial's model's accuracy on the shared polarity test;
- fastText: `train_supervised(autotuneValidationFile=..., autotuneDuration=...)` on the same
  train and validation files, for the same wall time as ours, and its model's accuracy on the
  same test (target: ours >= fastText's).

Both read the same files, cleaned by the pipeline's one Python definition (as
benchmarks/train.py does); `--quick` runs 8 trials.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.train import OUT, prepared
from sentiment.labels import Layout, Policy, split_line, strip_prefix

VALIDATION_SHARE = 0.15


def splits() -> dict[str, Path]:
    """train / validation (the train split's last 15%) / test of the shared polarity sample."""
    files = prepared("amazon_review_polarity", Layout.POLARITY, Policy.BINARY)
    folder = OUT / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    out = {"train": folder / "train.txt", "validation": folder / "validation.txt"}
    if not all(p.exists() for p in out.values()):
        lines = files["train"].read_text(encoding="utf-8").splitlines(keepends=True)
        cut = int(len(lines) * (1 - VALIDATION_SHARE))
        out["train"].write_text("".join(lines[:cut]), encoding="utf-8")
        out["validation"].write_text("".join(lines[cut:]), encoding="utf-8")
    return out | {"test": files["test"]}


def test_set(path: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        label, text = split_line(line)
        if label is not None:
            texts.append(text)
            labels.append(label)
    return texts, labels


def ours(
    files: dict[str, Path], max_jobs: int, threads: int
) -> tuple[float, float, dict[str, str]]:
    """(seconds, test accuracy of the best trial's model, its values)."""
    import shutil

    from rich.console import Console

    from sentiment.config import Settings
    from sentiment.model import load_model
    from sentiment.storage import open_bucket
    from sentiment.train import tuning

    bucket_dir = OUT / "tune" / "bucket"
    shutil.rmtree(bucket_dir, ignore_errors=True)
    bucket = open_bucket(str(bucket_dir))
    config = tuning.TuningConfig(
        train=str(files["train"]),
        validation=str(files["validation"]),
        ranges=tuple(tuning.parse_range(r) for r in tuning.DEFAULT_RANGES),
        fixed={"threads": str(threads), "seed": "1"},
        max_jobs=max_jobs,
    )
    started = time.perf_counter()
    record = tuning.run_tuning(
        config, bucket=bucket, name=None, settings=Settings.load(), console=Console(stderr=True)
    )
    seconds = time.perf_counter() - started
    model = load_model(record["best"]["job"], bucket=bucket)
    texts, labels = test_set(files["test"])
    predicted = [p.labels[0] for p in model.predict(texts, raw=True, raw_scores=True)]
    accuracy = sum(strip_prefix(p) == t for p, t in zip(predicted, labels, strict=True))
    return seconds, accuracy / len(labels), record["best"]["params"]


def fasttext_autotune(
    files: dict[str, Path], seconds: float, threads: int
) -> tuple[float, dict[str, float]]:
    """(test accuracy, chosen values) of fastText's autotune given `seconds`."""
    import fasttext

    with _quiet_stdout():  # autotune prints its progress whatever `verbose` says
        model = fasttext.train_supervised(
            input=str(files["train"]),
            autotuneValidationFile=str(files["validation"]),
            autotuneDuration=max(1, round(seconds)),
            thread=threads,
            verbose=0,
        )
    _, precision, _ = model.test(str(files["test"]))
    args = model.f.getArgs()
    chosen = {
        k: getattr(args, k) for k in ("lr", "epoch", "wordNgrams", "dim", "minCount", "bucket")
    }
    return float(precision), chosen


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-jobs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="8 trials")
    args = parser.parse_args()
    max_jobs = 8 if args.quick else args.max_jobs
    print(f"cores {os.cpu_count()}, threads {args.threads}, load {os.getloadavg()}", flush=True)
    files = splits()
    seconds, accuracy, values = ours(files, max_jobs, args.threads)
    print(
        f"ours: {max_jobs} trials in {seconds / 60:.1f} min (target <= 10 min); best trial's "
        f"test accuracy {accuracy:.4f} with {values}",
        flush=True,
    )
    theirs, chosen = fasttext_autotune(files, seconds, args.threads)
    print(f"fastText -autotune, {seconds:.0f} s: test accuracy {theirs:.4f} with {chosen}")
    print(
        f"ours - fastText = {100 * (accuracy - theirs):+.2f} points (target >= 0); "
        f"load after {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
