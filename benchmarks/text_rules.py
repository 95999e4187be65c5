"""Text rules (issue 15.3): each rule alone against the text without them, same run, 3 seeds.

`python -m benchmarks.text_rules [--seeds 3] [--rules negation,emoticons,...] [--no-char-ngrams]`
prepares the shared samples (both folders, `sentiment run`'s three-class policy, the real
Spark job) once per rule, trains `sentiment run`'s model on them with each seed (2 threads)
and prints, per rule, the mean over seeds and the difference to the baseline of this run:
- polarity: the shared polarity test, positive score against negative (calibrated);
- full p/n: the shared full test, positive against negative (stars 1-2 vs 4-5);
- macro-F1 and 3-star share answered neutral or mixed: issue 13's four answers on the full
  test (what `sentiment evaluate` prints);
- normalize: microseconds per review (title x3 + body, ~560 characters) through
  `sentiment.text.normalize`, one text a call as a served request (rules alternated, best of
  40 passes over 2,000 reviews).

Every rule changes the texts, so the validation split drawn from them (CRC-32 of the text)
too: the rows `baseline split 2/3` and `negation split 2/3` are the same text rules with other
split seeds, and the last lines give the mean and range over the three splits.

Character n-grams (fastText's minn/maxn): our trainer has none, so they are measured with the
fastText library on the baseline's prepared files, against the same library without them
(both uncalibrated: the rows `ft plain` and `ft char`), with the library's predict time per
review (our compiled predictor does not serve subword models: the library does).

Everything goes to benchmarks/out/text_rules/ (gitignored); a rule's results are kept there
(`results.json`), so a rerun with more rules reuses them (`--fresh` measures again).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.train import ROOT, SHARED
from sentiment.reviews import RowOptions
from sentiment.text import UNRECORDED_CLEANING, compose, normalize

OUT = ROOT / "benchmarks" / "out" / "text_rules"
POLARITY_TEST = SHARED / "amazon_review_polarity" / "test.csv"
FULL_TEST = SHARED / "amazon_review_full" / "test.csv"
# The text before the token rules (title x3, none of the rules), and each rule alone on it.
BASELINE = RowOptions(cleaning=UNRECORDED_CLEANING)

RULES: dict[str, RowOptions] = {
    "baseline": BASELINE,
    "negation": replace(BASELINE, cleaning=replace(UNRECORDED_CLEANING, negation=True)),
    "emoticons": replace(BASELINE, cleaning=replace(UNRECORDED_CLEANING, emoticons=True)),
    "elongations": replace(BASELINE, cleaning=replace(UNRECORDED_CLEANING, elongations=True)),
    "title x1": replace(BASELINE, title_weight=1),
    "title x2": replace(BASELINE, title_weight=2),
    "title x4": replace(BASELINE, title_weight=4),
    # The baseline again, its validation split drawn with other seeds: every rule changes the
    # texts, so the split (CRC-32 of the text) too; these rows say how much that alone moves.
    "baseline split 2": BASELINE,
    "baseline split 3": BASELINE,
}
# The rule kept, on the same three splits.
RULES |= {f"negation split {n}": RULES["negation"] for n in (2, 3)}
CHAR_NGRAMS = {"minn": 3, "maxn": 6}


def prepare_all(names: list[str]) -> dict[str, Path]:
    """Each rule's prepared folder (the real Spark job, one session for all)."""
    from sentiment.config import Settings
    from sentiment.labels import Policy
    from sentiment.prepare import prepare, resolve_inputs
    from sentiment.prepare.job import start_spark

    folders = {name: OUT / _slug(name) / "prepared" for name in names}
    todo = [n for n in names if not (folders[n] / "manifest.json").is_file()]
    if not todo:
        return folders
    settings = Settings.load()
    sources = resolve_inputs(
        [SHARED / "amazon_review_full", SHARED / "amazon_review_polarity"],
        None,
        settings.cache_dir,
    )
    spark = start_spark(settings)
    try:
        for name in todo:
            shutil.rmtree(folders[name], ignore_errors=True)
            prepare(
                sources,
                folders[name],
                spark=spark,
                policy=Policy.TERNARY,
                options=RULES[name],
                seed=int(name.rsplit(" ", 1)[1]) if " split " in name else 1,
            )
    finally:
        spark.stop()
    return folders


def train(prepared: Path, bucket_dir: Path, seed: int) -> Path:
    """`sentiment run`'s training job on a prepared folder; its model.tar.gz."""
    from rich.console import Console

    from sentiment import layout
    from sentiment.config import Settings
    from sentiment.storage import LocalBucket
    from sentiment.train.hyperparams import PIPELINE_DEFAULTS
    from sentiment.train.job import run_training

    bucket = LocalBucket(bucket_dir)
    name = f"seed-{seed}"
    shutil.rmtree(bucket_dir / name, ignore_errors=True)
    run_training(
        train=prepared / layout.TRAIN_FILE,
        validation=prepared / layout.VALIDATION_FILE,
        bucket=bucket,
        job_name=name,
        hyperparameters={**PIPELINE_DEFAULTS, "seed": str(seed), "threads": "2"},
        settings=Settings.load(),
        console=Console(stderr=True, quiet=True),
    )
    return bucket.local_path(layout.model_archive_key(name))


def figures(model_ref: Path) -> dict[str, float]:
    """The four figures of one model on the two shared tests."""
    from sentiment.evaluate import answers
    from sentiment.evaluate.report import read_test
    from sentiment.model import load_model

    model = load_model(model_ref)
    out: dict[str, float] = {}
    polarity = read_test(POLARITY_TEST, model)
    section = answers.compute(
        model, polarity.texts, polarity.labels, polarity.raw, sources=polarity.sources
    )
    out["polarity"] = section["accuracy"]
    full = read_test(FULL_TEST, model)
    section = answers.compute(
        model, full.texts, full.labels, full.raw, sources=full.sources, stars=full.stars
    )
    out["macro_f1"] = section["macro_f1"]
    out["three_star"] = section["three_star_neutral_or_mixed"]
    out["ece"] = section["ece_after"]
    stars = np.array(full.stars)
    polar = stars != 3
    scores = model.answer_scores(
        [t for t, keep in zip(full.texts, polar, strict=True) if keep],
        sources=[s for s, keep in zip(full.sources or [], polar, strict=True) if keep],
    )
    from sentiment.answers import NEGATIVE, POSITIVE

    said = scores[:, POSITIVE] > scores[:, NEGATIVE]
    out["full_pn"] = float((said == (stars[polar] >= 4)).mean())
    return out


def normalize_speeds(names: list[str], passes: int = 40) -> dict[str, float]:
    """Microseconds per review through `normalize`, one text a call as a served request; the
    rules alternated pass by pass (the machine is shared), the best pass of each."""
    from sentiment.reviews import parse_line, read_lines

    rows = [fields for fields, _ in map(parse_line, read_lines(POLARITY_TEST)) if fields][:2000]
    texts = {
        n: [compose(t, b, RULES[n].include_title, RULES[n].title_weight) for _, t, b in rows]
        for n in names
    }
    best = dict.fromkeys(names, float("inf"))
    for _ in range(passes):
        for n in names:
            cleaning = RULES[n].cleaning
            started = time.perf_counter()
            for text in texts[n]:
                normalize(text, cleaning)
            best[n] = min(best[n], time.perf_counter() - started)
    return {n: seconds / len(rows) * 1e6 for n, seconds in best.items()}


def char_ngrams(prepared: Path, seeds: list[int]) -> dict[str, list[dict[str, float]]]:
    """fastText-library models without and with character n-grams, uncalibrated."""
    import fasttext

    from sentiment import layout
    from sentiment.train.hyperparams import PIPELINE_DEFAULTS

    hp = PIPELINE_DEFAULTS
    common = {
        "epoch": int(hp["epochs"]),
        "lr": float(hp["learning_rate"]),
        "dim": int(hp["vector_dim"]),
        "wordNgrams": int(hp["word_ngrams"]),
        "minCount": int(hp["min_count"]),
        "bucket": 2_000_000,
        "thread": 2,
        "verbose": 0,
    }
    sidecar = next((OUT / "baseline" / "jobs").glob("*/output/model.tar.gz"))
    results: dict[str, list[dict[str, float]]] = {"ft plain": [], "ft char": []}
    for seed in seeds:
        for name, extra in (("ft plain", {}), ("ft char", CHAR_NGRAMS)):
            folder = OUT / _slug(name) / f"seed-{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            ft = fasttext.train_supervised(
                input=str(prepared / layout.TRAIN_FILE), seed=seed, **common, **extra
            )
            seconds = time.perf_counter() - started
            ft.save_model(str(folder / "model.bin"))
            _copy_preprocessing(sidecar, folder)
            row = figures(folder / "model.bin") | {"train_s": seconds}
            row["predict_us"] = _predict_speed(folder / "model.bin")
            results[name].append(row)
    return results


def _copy_preprocessing(archive: Path, folder: Path) -> None:
    """The baseline's preprocessing.json beside a fastText-library model (same text rules)."""
    import tarfile

    from sentiment import layout

    with tarfile.open(archive) as tar:
        member = tar.extractfile(layout.PREPROCESSING)
        assert member is not None
        (folder / layout.PREPROCESSING).write_bytes(member.read())


def _predict_speed(model_bin: Path) -> float:
    from sentiment.evaluate.report import read_test
    from sentiment.model import load_model

    model = load_model(model_bin)
    texts = model.prepare_texts(read_test(POLARITY_TEST, model).texts[:5000])
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        model.predict_proba(texts, raw=True)
        best = min(best, time.perf_counter() - started)
    return best / len(texts) * 1e6


def _slug(name: str) -> str:
    return name.replace(" ", "-").replace("+", "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--rules", default=",".join(RULES), help="comma-separated; of " + ", ".join(RULES)
    )
    parser.add_argument("--no-char-ngrams", action="store_true")
    parser.add_argument(
        "--fresh", action="store_true", help="measure again what results.json holds"
    )
    args = parser.parse_args()
    names = ["baseline"] + [n for n in args.rules.split(",") if n and n != "baseline"]
    unknown = set(names) - set(RULES)
    if unknown:
        raise SystemExit(
            f"Error: unknown rule(s) {', '.join(sorted(unknown))}; choose from {', '.join(RULES)}."
        )
    seeds = list(range(1, args.seeds + 1))
    OUT.mkdir(parents=True, exist_ok=True)
    store = OUT / "results.json"
    results: dict[str, Any] = (
        {} if args.fresh or not store.is_file() else json.loads(store.read_text())
    )

    def save() -> None:
        store.write_text(json.dumps(results, indent=1))

    folders = prepare_all([n for n in names if args.fresh or n not in results])
    for name in names:
        if name in results and len(results[name]["seeds"]) >= len(seeds):
            continue
        rows = []
        for seed in seeds:
            started = time.perf_counter()
            archive = train(folders[name], OUT / _slug(name) / "jobs", seed)
            rows.append(figures(archive) | {"train_s": time.perf_counter() - started})
            print(f"{name} seed {seed}: {rows[-1]}", flush=True)
        results[name] = {"seeds": rows}
        save()
    if not args.no_char_ngrams and ("ft char" not in results or args.fresh):
        prepared = prepare_all(["baseline"])["baseline"]
        for name, rows in char_ngrams(prepared, seeds).items():
            results[name] = {"seeds": rows}
        save()
    speeds = normalize_speeds([n for n in names if " split " not in n])
    report(results, [*names, *(["ft plain", "ft char"] if "ft char" in results else [])], speeds)


def report(results: dict[str, Any], names: list[str], speeds: dict[str, float]) -> None:
    keys = ("polarity", "full_pn", "macro_f1", "three_star", "ece")
    means = {
        n: {k: statistics.fmean(r[k] for r in results[n]["seeds"]) for k in keys} for n in names
    }
    print(
        f"\n{'rule':14} {'polarity':>16} {'full p/n':>16} {'macro-F1':>16} {'3-star n/m':>16} "
        f"{'ECE':>7} {'seed sd':>8} {'normalize':>13}"
    )
    for n in names:
        base = means["ft plain" if n == "ft char" else "baseline"]
        cells = [
            f"{means[n][k]:.4f} ({means[n][k] - base[k]:+.4f})"
            for k in ("polarity", "full_pn", "macro_f1", "three_star")
        ]
        spread = (
            statistics.stdev(r["polarity"] for r in results[n]["seeds"])
            if len(results[n]["seeds"]) > 1
            else 0.0
        )
        speed = f"{speeds[n]:6.2f} us {speeds[n] / speeds['baseline']:4.2f}x" if n in speeds else ""
        extra = ""
        if "predict_us" in results[n]["seeds"][0]:
            predict = statistics.fmean(r["predict_us"] for r in results[n]["seeds"])
            extra = f"  predict {predict:.1f} us, train {statistics.fmean(r['train_s'] for r in results[n]['seeds']):.0f} s"
        print(
            f"{n:14} {' '.join(f'{c:>16}' for c in cells)} {means[n]['ece']:7.4f} {spread:8.4f} "
            f"{speed:>13}{extra}"
        )
    print(
        "\n(mean over seeds; in brackets the difference to the baseline of this run, to `ft "
        "plain` for `ft char`; seed sd: standard deviation of the polarity accuracy over seeds)"
    )
    for rule in ("baseline", "negation"):
        splits = [n for n in means if n == rule or n.startswith(f"{rule} split")]
        if len(splits) < 2:
            continue
        over = {k: statistics.fmean(means[n][k] for n in splits) for k in keys}
        spread = {
            k: max(means[n][k] for n in splits) - min(means[n][k] for n in splits) for k in keys
        }
        print(
            f"{rule} over {len(splits)} validation splits, mean (range of the split means): "
            + ", ".join(f"{k} {over[k]:.4f} ({spread[k]:.4f})" for k in keys)
        )


if __name__ == "__main__":
    main()
