"""The Spark job: read lines, parse + clean in Python over Arrow batches, dedupe, split, write.

Parsing and cleaning are `sentiment.reviews.parse_line` / `clean_row`, the same functions the
inference path uses. Output is written into a temporary folder that replaces `output` only
when everything (files + manifest) is complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment import __version__, layout
from sentiment.config import Settings
from sentiment.datasets import DATASETS, extract_dataset, resolve_dataset
from sentiment.errors import DataError, InputNotFound
from sentiment.labels import Layout, Policy, detect_layout
from sentiment.reviews import (
    DROP_DUPLICATE,
    RowOptions,
    clean_row,
    is_rejection,
    parse_line,
    read_lines,
    source_split_of,
    split_of,
)
from sentiment.storage import atomic_directory, atomic_write_json

COLUMNS = ("split", "label", "text", "reason", "raw", "input")
SPLIT_PRIORITY = {"test": 0, "validation": 1, "train": 2}


@dataclass(frozen=True)
class Source:
    """One input CSV file, its layout and the split it holds."""

    path: Path
    layout: Layout
    split: str


def resolve_inputs(
    inputs: list[Path], layout_name: str | None, cache_dir: Path, *, mirror: str | None = None
) -> list[Source]:
    """The CSV files behind --input values (file, folder with train/test.csv, .tgz, or dataset name)."""
    sources: list[Source] = []
    for given in inputs:
        path = Path(given)
        if not path.exists() and str(given) in DATASETS:
            # A dataset name: fetched into the cache once (verified), then read from there.
            path = resolve_dataset(str(given), cache_dir, download=True, mirror=mirror)
        if not path.exists():
            raise InputNotFound(
                f"Input {str(path)!r} does not exist.",
                hint="Give a reviews CSV, a folder with train.csv/test.csv, or the dataset .tgz "
                "(sentiment datasets download fetches it).",
            )
        if path.is_file() and path.name.endswith((".tgz", ".tar.gz")):
            path = extract_dataset(path, cache_dir)
        if path.is_dir():
            files = [path / n for n in ("train.csv", "test.csv") if (path / n).is_file()]
            if not files:
                raise InputNotFound(f"Folder {str(path)!r} has no train.csv or test.csv.")
        else:
            files = [path]
        for file in files:
            found = Layout(layout_name) if layout_name else _detect(file)
            sources.append(Source(file, found, source_split_of(file)))
    return sources


def _detect(path: Path, rows: int = 2000) -> Layout:
    labels = []
    for i, line in enumerate(read_lines(path)):
        if i >= rows:
            break
        fields, _ = parse_line(line)
        if fields:
            labels.append(fields[0])
    try:
        return detect_layout(labels)
    except Exception as err:
        raise DataError(f"{path}: {err}", hint="Pass --layout full or --layout polarity.") from None


def start_spark(settings: Settings, master: str | None = None, ui: bool = False) -> Any:
    """A Spark session bound to 127.0.0.1 whose Python workers run this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master or settings.spark_master)
        .appName("sentiment-prepare")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        # Small input splits, so even one CSV keeps every core busy in the Python stage.
        .config("spark.sql.files.maxPartitionBytes", "16m")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "5000")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _clean_batches(
    sources: list[Source], policy: Policy, options: RowOptions, seed: int, fraction: float
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    by_path = {str(s.path.resolve()): s for s in sources}

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        resolved: dict[str, Source] = {}  # input_file_name() URI -> source, resolved once
        arrow_schema = pa.schema([(name, pa.string()) for name in COLUMNS])
        for batch in batches:
            values = batch.column(0).to_pylist()
            files = batch.column(1).to_pylist()
            out: dict[str, list[Any]] = {k: [] for k in COLUMNS}
            for data, file in zip(values, files, strict=True):
                line = data.decode("utf-8", errors="replace")
                source = resolved.get(file) or resolved.setdefault(file, by_path[_local(file)])
                fields, reason = parse_line(line)
                label, text = None, ""
                if fields is not None:
                    label, text, reason = clean_row(
                        source.layout, fields[0], fields[1], fields[2], policy, options
                    )
                split = (
                    split_of(source.split, text, seed, fraction) if reason is None else source.split
                )
                out["split"].append(split)
                out["label"].append(label)
                out["text"].append(text)
                out["reason"].append(reason)
                out["raw"].append(line if is_rejection(reason) else None)
                out["input"].append(str(source.path))
            yield pa.RecordBatch.from_pydict(out, schema=arrow_schema)

    return run


def _local(uri: str) -> str:
    from urllib.parse import unquote, urlparse

    return str(Path(unquote(urlparse(uri).path)).resolve()) if uri.startswith("file:") else uri


def prepare(
    sources: list[Source],
    output: Path,
    *,
    spark: Any,
    policy: Policy = Policy.BINARY,
    options: RowOptions | None = None,
    seed: int = 1,
    validation_fraction: float = 0.1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the job; returns the manifest written to `output/manifest.json`."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = time.monotonic()
    options = options or RowOptions()
    say = progress or (lambda _msg: None)
    schema = "split string, label string, text string, reason string, raw string, input string"
    lines = spark.read.text([str(s.path.resolve()) for s in sources]).select(
        # As bytes: undecodable input must reach parse_line (as U+FFFD) rather than crash Arrow.
        F.col("value").cast("binary"),
        F.input_file_name().alias("file"),
    )
    cleaned = lines.mapInArrow(
        _clean_batches(sources, policy, options, seed, validation_fraction), schema
    ).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with atomic_directory(output) as tmp:
            say("cleaning rows")
            stats = cleaned.groupBy("split", "label", "reason").count().collect()
            read = sum(r["count"] for r in stats)
            say(f"rows read: {read:,}")
            rejected: Counter[str] = Counter()
            dropped: Counter[str] = Counter()
            kept_by_split: Counter[str] = Counter()
            for r in stats:
                if r["reason"] is None:
                    kept_by_split[r["split"]] += r["count"]
                elif is_rejection(r["reason"]):
                    rejected[r["reason"]] += r["count"]
                else:
                    dropped[r["reason"]] += r["count"]
            if rejected:
                (
                    cleaned.filter(F.col("raw").isNotNull())
                    .select(F.to_json(F.struct("input", "reason", "raw")).alias("value"))
                    .coalesce(1)
                    .write.text(str(tmp / layout.REJECTS_DIR))
                )
            kept = cleaned.filter(F.col("reason").isNull())
            if options.dedupe:
                prio = F.create_map(
                    *[x for k, v in SPLIT_PRIORITY.items() for x in (F.lit(k), F.lit(v))]
                )
                kept = (
                    kept.withColumn("p", prio[F.col("split")])
                    .groupBy("text")
                    .agg(F.min(F.struct("p", "split", "label")).alias("m"))
                    .select("text", "m.split", "m.label")
                )
            parts = tmp / ".parts"
            (
                kept.select(
                    "split",
                    F.concat(F.lit("__label__"), F.col("label"), F.lit(" "), F.col("text")).alias(
                        "v"
                    ),
                )
                .write.partitionBy("split")
                .text(str(parts))
            )
            counts: dict[str, dict[str, int]] = {}
            for split, name in layout.PREPARED_SPLITS.items():
                counts[split] = _concatenate(parts / f"split={split}", tmp / name)
                say(f"{name}: {sum(counts[split].values()):,} rows")
            shutil.rmtree(parts)
            written = {s: sum(c.values()) for s, c in counts.items()}
            duplicates = sum(kept_by_split.values()) - sum(written.values())
            if duplicates:
                dropped[DROP_DUPLICATE] = duplicates
            if sum(written.values()) == 0:
                raise DataError(
                    "No rows left after cleaning; nothing to train on.",
                    hint="Check the inputs, --layout and --policy.",
                )
            manifest = {
                "version": __version__,
                "inputs": [_describe(s) for s in sources],
                "policy": policy.value,
                "labels": sorted({lbl for c in counts.values() for lbl in c}),
                "cleaning": options.to_dict(),
                "seed": seed,
                "validation_fraction": validation_fraction,
                "rows_read": read,
                "rows_written": sum(written.values()),
                "counts": counts,
                "dropped": dict(dropped),
                "rejected": dict(rejected),
                "elapsed_seconds": round(time.monotonic() - started, 3),
            }
            assert read == sum(written.values()) + sum(dropped.values()) + sum(rejected.values())
            atomic_write_json(tmp / layout.MANIFEST, manifest)
    finally:
        cleaned.unpersist()
    return manifest


def _concatenate(folder: Path, target: Path) -> dict[str, int]:
    counts: Counter[str] = Counter()
    with open(target, "wb") as out:
        for part in sorted(folder.glob("part-*")) if folder.is_dir() else []:
            with open(part, "rb") as fh:
                for line in fh:
                    counts[line[: line.index(b" ")].decode().removeprefix("__label__")] += 1
                    out.write(line)
    return dict(sorted(counts.items()))


def _describe(source: Source) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(source.path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return {
        "path": str(source.path),
        "layout": source.layout.value,
        "split": source.split,
        "size": source.path.stat().st_size,
        "sha256": digest.hexdigest(),
    }
