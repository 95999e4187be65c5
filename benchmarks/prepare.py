"""Prepare throughput: our Spark job vs plain single-process Python vs polars, same input.

`python -m benchmarks.prepare [--quick] [--rows N]`: replicates the shared sample (both
datasets, all splits) to ~3.6M rows in benchmarks/out/ (gitignored) and prints rows/s of each
and the ratios. Targets (issue 3): full size <= 60 s on 2 cores, >= 2x plain Python, >= 0.5x polars.
The polars baseline applies the same rules as far as its regex engine allows (no look-around:
emoticons and apostrophe words are split), so it does slightly less work than ours.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import time
from pathlib import Path

from sentiment.config import Settings
from sentiment.labels import POLICY_TABLE, Layout, Policy
from sentiment.reviews import split_of
from sentiment.text import compose

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "benchmarks" / "out" / "prepare"


def replicate(rows: int) -> Path:
    """A full-layout train.csv of about `rows` rows made of copies of the shared sample."""
    target = OUT / f"replica-{rows}" / "train.csv"
    if target.exists():
        return target
    sample = b"".join(
        (SHARED / d / f).read_bytes()
        for d in ("amazon_review_full",)
        for f in ("train.csv", "test.csv")
    )
    per = sample.count(b"\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as fh:
        for _ in range(max(1, round(rows / per))):
            fh.write(sample)
    return target


def run_plain(path: Path, out: Path) -> int:
    """What a single-machine user writes first: csv + re in one process, the same rules (the
    regular expressions of tests/text_reference.py, the specification our kernel is tested
    against), the same label policy, dedupe and split."""
    from tests.text_reference import normalize as regex_normalize

    table = POLICY_TABLE[Policy.BINARY][Layout.FULL]
    seen: set[str] = set()
    files = {s: open(out / f"{s}.txt", "w") for s in ("train", "validation", "test")}  # noqa: SIM115
    read = 0
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for row in csv.reader(fh):
            read += 1
            label = table.get(row[0]) if len(row) == 3 else None
            if label is None:
                continue
            text = regex_normalize(compose(row[1], row[2], title_weight=3))
            if text and text not in seen:
                seen.add(text)
                files[split_of("train", text, 1, 0.1)].write(f"__label__{label} {text}\n")
    for fh in files.values():
        fh.close()
    return read


def run_polars(path: Path, out: Path) -> int:
    import polars as pl

    df = pl.read_csv(
        path,
        has_header=False,
        new_columns=["label", "title", "body"],
        quote_char='"',
        schema_overrides={"label": pl.Utf8, "title": pl.Utf8, "body": pl.Utf8},
    )
    text = pl.col("title").fill_null("") + " " + pl.col("body").fill_null("")
    for entity, char in (
        ("&amp;", "&"),
        ("&quot;", '"'),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&#39;", "'"),
    ):
        text = text.str.replace_all(entity, char, literal=True)
    text = (
        text.str.replace_all(r"\\n", " ", literal=True)
        .str.to_lowercase()
        .str.replace_all(r"(?:https?://|www\.)\S+", " _url_ ")
        .str.replace_all(r"\b\d+(?:[.,:]\d+)*\b", " _num_ ")
        .str.replace_all(r"([^\w\s])", " $1 ")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )
    label = pl.col("label").replace_strict(
        {"1": "negative", "2": "negative", "4": "positive", "5": "positive"}, default=None
    )
    result = (
        df.select(label.alias("label"), text.alias("text"))
        .filter(pl.col("label").is_not_null() & (pl.col("text") != ""))
        .unique("text", keep="first", maintain_order=False)
        .with_columns(
            ((pl.col("text").hash(1) % 10) == 0).alias("validation"),
            ("__label__" + pl.col("label") + " " + pl.col("text")).alias("line"),
        )
    )
    result.filter(pl.col("validation")).select("line").write_csv(
        out / "validation.txt", include_header=False, quote_style="never"
    )
    result.filter(~pl.col("validation")).select("line").write_csv(
        out / "train.txt", include_header=False, quote_style="never"
    )
    return df.height


def run_spark(path: Path, out: Path) -> tuple[int, float]:
    from sentiment.prepare import prepare, resolve_inputs
    from sentiment.prepare.job import start_spark

    clock = time.perf_counter()
    spark = start_spark(Settings.load().replace(spark_master="local[2]"))
    print(f"  Spark session started in {time.perf_counter() - clock:.1f} s (not counted below)")
    try:
        started = time.perf_counter()
        log = lambda msg: print(f"  [{time.perf_counter() - started:6.1f}s] {msg}", flush=True)  # noqa: E731
        manifest = prepare(
            resolve_inputs([path], "full", OUT), out / "spark", spark=spark, progress=log
        )
        return manifest["rows_read"], time.perf_counter() - started
    finally:
        spark.stop()


def layout_scan(path: Path) -> None:
    """The layout is decided from every row's label (issue 13.4): `count_labels` over the whole
    file vs the plain way to read the label column, csv.reader's first field."""
    from sentiment.reviews import count_labels

    started = time.perf_counter()
    counts = count_labels(path)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        plain = sum(1 for row in csv.reader(fh) if row)
    base = time.perf_counter() - started
    rows = sum(counts.values())
    assert rows == plain, (rows, plain)
    print(
        f"layout scan: {rows:,} rows in {ours:.2f} s = {rows / ours:,.0f} rows/s; "
        f"csv.reader first column {plain / base:,.0f} rows/s: {base / ours:.1f}x"
    )


def timed(name: str, fn, path: Path) -> float:  # type: ignore[no-untyped-def]
    out = OUT / f"out-{name}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    rows = fn(path, out)
    elapsed = time.perf_counter() - started
    if isinstance(rows, tuple):
        rows, elapsed = rows
    print(
        f"{name:>7}: {rows:,} rows in {elapsed:6.1f} s = {rows / elapsed:10,.0f} rows/s", flush=True
    )
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="~120k rows instead of ~3.6M")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--scan-only", action="store_true", help="only the layout scan")
    args = parser.parse_args()
    rows = args.rows or (120_000 if args.quick else 3_600_000)
    path = replicate(rows)
    print(
        f"input: {path.stat().st_size / 1e6:,.0f} MB, cores {os.cpu_count()}, load {os.getloadavg()}"
    )
    layout_scan(path)
    if args.scan_only:
        return
    spark = timed("spark", run_spark, path)
    plain = timed("python", run_plain, path)
    polars = timed("polars", run_polars, path)
    print(f"spark / plain Python = {spark / plain:.2f}x (target >= 2x)")
    print(f"spark / polars       = {spark / polars:.2f}x (target >= 0.5x)")
    print(f"full-size estimate for 3.6M rows: {3_600_000 / spark:.0f} s (target <= 60 s)")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
