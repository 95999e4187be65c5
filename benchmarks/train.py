"""Training: our BlazingText-compatible trainer against the fastText library, same run.

`python -m benchmarks.train [--quick] [--tokens N] [--seeds 3]` prints:
- accuracy: test accuracy of ours and of fastText (same prepared data, same hyperparameters,
  early stopping off), averaged over seeds, on the shared polarity and full samples (binary
  policy, and the full sample's 5 stars); target |difference| <= 0.5 points;
- speed: words/s of both on 2 threads with the seed's hyperparameters on the shared sample
  replicated to >= 50M tokens (each trainer in its own process, wall clock from reading the
  file to the saved model), and the ratio; target ours >= 0.9x fastText;
- early stopping: the whole training job with early stopping on (validating every epoch,
  never stopping, so the same epochs run) against off; target <= 1.3x;
- memory: peak RSS of each trainer's process; target ours <= fastText's (same buckets).

The data is prepared by the one Python definition (sentiment.reviews.clean_file, the same
rules as the Spark job) into benchmarks/out/train/ (gitignored).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sentiment.labels import Layout, Policy, with_prefix
from sentiment.reviews import RowOptions, clean_file

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "train"

# The seed exercise's hyperparameters (early stopping off for the comparisons).
SEED_HP = {
    "epochs": 10,
    "learning_rate": 0.05,
    "min_count": 2,
    "vector_dim": 10,
    "word_ngrams": 2,
    "buckets": 2_000_000,
}


def prepared(dataset: str, layout: Layout, policy: Policy) -> dict[str, Path]:
    """train.txt / test.txt of a shared sample, cleaned by the pipeline's Python path."""
    folder = OUT / f"{dataset}-{policy.value}"
    files = {split: folder / f"{split}.txt" for split in ("train", "test")}
    if all(f.exists() for f in files.values()):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    for split, target in files.items():
        lines = [
            f"{with_prefix(label)} {text}\n"
            for _raw, label, text, reason in clean_file(
                SHARED / dataset / f"{split}.csv", layout, policy, RowOptions()
            )
            if reason is None and label is not None
        ]
        tmp = target.with_suffix(".tmp")
        tmp.write_text("".join(lines), encoding="utf-8")
        tmp.replace(target)
    return files


def replicated(source: Path, tokens: int) -> tuple[Path, int]:
    """`source` repeated until it holds at least `tokens` tokens (words + end of line)."""
    text = source.read_text(encoding="utf-8")
    per_copy = len(text.split()) - text.count("__label__") + text.count("\n")
    copies = max(1, -(-tokens // per_copy))
    target = OUT / f"replica-{copies}x-{source.stem}.txt"
    if not target.exists():
        tmp = target.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for _ in range(copies):
                fh.write(text)
        tmp.replace(target)
    return target, per_copy * copies


def train_fasttext(train: Path, hp: dict[str, Any], threads: int, seed: int) -> Any:
    """The fastText library with BlazingText's hyperparameter names mapped to its own."""
    import fasttext

    return fasttext.train_supervised(
        str(train), epoch=hp["epochs"], lr=hp["learning_rate"], minCount=hp["min_count"],
        dim=hp["vector_dim"], wordNgrams=hp["word_ngrams"], bucket=hp["buckets"], thread=threads,
        seed=seed, verbose=0,
    )  # fmt: skip


def train_ours(train: Path, hp: dict[str, Any], threads: int, seed: int) -> tuple[Any, float]:
    """Our trainer, every epoch run; returns it and the seconds spent inside the epochs."""
    from sentiment.engine import Trainer
    from sentiment.train.hyperparams import resolve

    trainer = Trainer(resolve(hp | {"threads": threads, "seed": seed}).engine)
    trainer.build_vocab(train)
    seconds = sum(trainer.run_epoch(epoch).seconds for epoch in range(hp["epochs"]))
    return trainer, seconds


# --- workers: one trainer per process, so that peak RSS is its own -------------------------


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would carry the parent's over fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(args: argparse.Namespace) -> None:
    hp = json.loads(args.hp)
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if args.worker == "fasttext":
        train_fasttext(Path(args.train), hp, args.threads, hp.get("seed", 0)).save_model(
            str(OUT / "fasttext.bin")
        )
    elif args.worker == "ours":
        trainer, loop = train_ours(Path(args.train), hp, args.threads, hp.get("seed", 0))
        trainer.save_bin(OUT / "ours.bin")
        result["loop_words_per_sec"] = trainer.ntokens * hp["epochs"] / loop
    else:  # the whole training job, as `sentiment train` runs it
        from rich.console import Console

        from sentiment.config import Settings
        from sentiment.storage import open_bucket
        from sentiment.train.job import run_training

        bucket = open_bucket(str(OUT / "bucket"))
        record = run_training(
            train=Path(args.train),
            validation=Path(args.validation) if args.validation else None,
            bucket=bucket,
            job_name=None,
            hyperparameters=hp | {"threads": args.threads},
            settings=Settings.load(),
            console=Console(stderr=True, quiet=True),
        )
        result["epochs"] = len(record["epochs"])
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def run_worker(
    kind: str, train: Path, hp: dict[str, Any], threads: int, validation: Path | None = None
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "benchmarks.train", "--worker", kind, "--train", str(train),
        "--hp", json.dumps(hp), "--threads", str(threads),
    ]  # fmt: skip
    if validation is not None:
        cmd += ["--validation", str(validation)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


# --- accuracy ------------------------------------------------------------------------------


def accuracies(files: dict[str, Path], seed: int, threads: int) -> tuple[float, float]:
    """(ours, fastText) accuracy on the test file, every test line counted by both."""
    import numpy as np

    lines = files["test"].read_text(encoding="utf-8").splitlines()
    truth = [line.split(" ", 1)[0] for line in lines]
    texts = [line.split(" ", 1)[1] if " " in line else "" for line in lines]
    trainer, _ = train_ours(files["train"], SEED_HP, threads, seed)
    labels = trainer.labels
    ours_pred = [labels[i] for i in np.asarray(trainer.predict_proba(texts)).argmax(axis=1)]
    ft = train_fasttext(files["train"], SEED_HP, threads, seed)
    theirs_pred = [p[0] for p in ft.predict(texts, k=1)[0]]
    n = len(truth)
    ours = sum(p == t for p, t in zip(ours_pred, truth, strict=True)) / n
    theirs = sum(p == t for p, t in zip(theirs_pred, truth, strict=True)) / n
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5M tokens and 1 seed")
    parser.add_argument("--tokens", type=int, default=None, help="speed corpus size (default 50M)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", choices=("ours", "fasttext", "job"), help=argparse.SUPPRESS)
    parser.add_argument("--train", help=argparse.SUPPRESS)
    parser.add_argument("--validation", help=argparse.SUPPRESS)
    parser.add_argument("--hp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    tokens = args.tokens or (5_000_000 if args.quick else 50_000_000)
    seeds = args.seeds or (1 if args.quick else 3)
    threads = args.threads
    OUT.mkdir(parents=True, exist_ok=True)
    print(f"cores {os.cpu_count()}, threads {threads}, load {os.getloadavg()}", flush=True)
    datasets = {
        "polarity (binary)": prepared("amazon_review_polarity", Layout.POLARITY, Policy.BINARY),
        "full (binary)": prepared("amazon_review_full", Layout.FULL, Policy.BINARY),
        "full (stars)": prepared("amazon_review_full", Layout.FULL, Policy.STARS),
    }
    # One untimed run first (file caches warm), so that no timed run pays for a cold start.
    run_worker("ours", datasets["full (binary)"]["test"], SEED_HP | {"epochs": 1}, threads)

    print(f"\naccuracy, seed hyperparameters {SEED_HP}, early stopping off, {seeds} seed(s):")
    worst = 0.0
    for name, files in datasets.items():
        pairs = [accuracies(files, seed, threads) for seed in range(1, seeds + 1)]
        ours = statistics.mean(p[0] for p in pairs)
        theirs = statistics.mean(p[1] for p in pairs)
        worst = max(worst, abs(ours - theirs))
        print(
            f"  {name:<18} ours {ours:.4f}  fastText {theirs:.4f}  "
            f"difference {100 * (ours - theirs):+.2f} points",
            flush=True,
        )
    print(f"  largest |difference| {100 * worst:.2f} points (target <= 0.50)")

    both = OUT / "polarity+full-train.txt"
    if not both.exists():
        both.write_text(
            datasets["polarity (binary)"]["train"].read_text(encoding="utf-8")
            + datasets["full (binary)"]["train"].read_text(encoding="utf-8"),
            encoding="utf-8",
        )
    corpus, ntokens = replicated(both, tokens)
    print(
        f"\nspeed: {corpus.name}, {ntokens / 1e6:.1f}M tokens x {SEED_HP['epochs']} epochs, "
        f"{threads} threads",
        flush=True,
    )
    results = {kind: run_worker(kind, corpus, SEED_HP, threads) for kind in ("fasttext", "ours")}
    words = ntokens * SEED_HP["epochs"]
    for kind, r in results.items():
        extra = (
            f", {r['loop_words_per_sec'] / 1e6:.1f}M words/s in the epochs"
            if "loop_words_per_sec" in r
            else ""
        )
        print(
            f"  {kind:<9} {r['seconds']:6.1f} s  {words / r['seconds'] / 1e6:6.2f}M words/s "
            f"(file to saved model{extra})  peak RSS {r['peak_rss_mb']:,.0f} MB",
            flush=True,
        )
    speed = results["fasttext"]["seconds"] / results["ours"]["seconds"]
    memory = results["ours"]["peak_rss_mb"] / results["fasttext"]["peak_rss_mb"]
    print(f"  ours / fastText words/s = {speed:.2f}x (target >= 0.9x)")
    print(f"  ours / fastText peak RSS = {memory:.2f}x (target <= 1.0x)")

    validation = datasets["polarity (binary)"]["test"]
    epochs = SEED_HP["epochs"]
    off = run_worker("job", corpus, SEED_HP | {"early_stopping": False}, threads)
    on = run_worker(
        "job",
        corpus,
        SEED_HP | {"early_stopping": True, "min_epochs": 1, "patience": epochs},
        threads,
        validation=validation,
    )
    print(
        f"\nearly stopping (whole job, {epochs} epochs each, validation {validation.stat().st_size / 1e6:.1f} MB):"
        f"\n  off {off['seconds']:.1f} s, on {on['seconds']:.1f} s ({on['epochs']} epochs): "
        f"{on['seconds'] / off['seconds']:.2f}x (target <= 1.3x)"
    )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
