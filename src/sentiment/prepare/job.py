"""The Spark job: read lines, parse + clean over Arrow batches, dedupe, split, write.

Parsing and cleaning are `sentiment.reviews.clean_lines` (the compiled rules, on the batch's
Arrow buffers) and, for the lines it leaves to Python, `parse_line` / `clean_rows`: the same
rules the inference path uses. Output is written into a temporary folder that replaces `output` only
when everything (files + manifest) is complete (`storage.staged_tree`: a folder renamed, or an
S3 prefix copied with the manifest last). Inputs and output may be s3a:// URIs, which Spark
reads and writes itself (`sentiment.prepare.s3a`). Each input's layout is given, or decided from
every row's label before Spark starts (`sentiment.reviews.count_labels`); a run that rejects
too many rows for one reason fails (`sentiment.reviews.too_many_rejects`), keeping its
rejects/ beside `output`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from sentiment import __version__, layout
from sentiment.config import Settings
from sentiment.datasets import DATASETS, extract_dataset, resolve_dataset
from sentiment.errors import DataError, InputNotFound
from sentiment.files import sha256_file
from sentiment.labels import LABEL_PREFIX, POLICY_CLASSES, Layout, Policy
from sentiment.prepare.s3a import set_credentials, spark_uri
from sentiment.prepare.s3a import spark_config as s3a_config
from sentiment.reviews import (
    DROP_DUPLICATE,
    DROP_POLICY,
    DROP_SHORT,
    LAYOUT_CODES,
    REJECT_LABEL,
    SPLIT_CODES,
    RowOptions,
    clean_lines,
    clean_rows,
    detect_file_layout,
    is_rejection,
    parse_line,
    row_code,
    source_split_of,
    split_of,
    too_many_rejects,
)
from sentiment.storage import (
    Bucket,
    move_tree,
    open_bucket,
    split_file_uri,
    staged_tree,
)

SPLITS = list(SPLIT_CODES)  # split code -> name


@dataclass(frozen=True)
class Source:
    """One input CSV file (of this machine, or an s3a:// URI Spark reads itself), its layout
    and the split it holds (and, when the layout was detected, how many lines carry each raw
    label: what it was decided from)."""

    path: Path | str
    layout: Layout
    split: str
    labels: dict[str, int] | None = field(default=None, compare=False)

    @property
    def location(self) -> str:
        """What Spark reads: the file's absolute path, or its s3a:// URI."""
        return self.path if isinstance(self.path, str) else str(self.path.resolve())


def _source(path: Path | str, layout_name: str | None, stream: Any = None) -> Source:
    split = source_split_of(PurePosixPath(path) if isinstance(path, str) else path)
    if layout_name:
        return Source(path, Layout(layout_name), split)
    found, labels = detect_file_layout(path, stream)
    return Source(path, found, split, labels)


def resolve_inputs(
    inputs: Sequence[Path | str],
    layout_name: str | None,
    cache_dir: Path,
    *,
    mirror: str | None = None,
) -> list[Source]:
    """The CSV files behind --input values (file, folder with train/test.csv, .tgz, or dataset
    name; or an s3a:// URI of a CSV or of a folder with train/test.csv, which Spark reads)."""
    sources: list[Source] = []
    for given in inputs:
        if str(given).startswith("s3a://"):
            sources.extend(_remote_sources(str(given), layout_name))
            continue
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
        sources.extend(_source(file, layout_name) for file in files)
    return sources


def _remote_sources(uri: str, layout_name: str | None) -> list[Source]:
    """The CSVs at an s3a:// URI: the object itself, or train.csv/test.csv under the prefix.
    A layout to detect is read from the object through the seam (the whole label column)."""
    parent, name = split_file_uri(uri)
    if not uri.endswith("/") and parent.exists(name):
        files = [(parent, name)]
    else:
        folder = open_bucket(uri)
        files = [(folder, n) for n in ("train.csv", "test.csv") if folder.exists(n)]
        if not files:
            raise InputNotFound(
                f"{uri} is neither a reviews CSV nor a folder with train.csv or test.csv.",
                hint="Check the URI (aws s3 ls); an S3 archive (.tgz) is read as s3:// instead.",
            )
    sources = []
    for bucket, key in files:
        location = spark_uri(bucket.url(key))
        if layout_name:
            sources.append(_source(location, layout_name))
        else:
            with bucket.open_read(key) as stream:
                sources.append(_source(location, None, stream))
    return sources


def start_spark(
    settings: Settings, master: str | None = None, ui: bool = False, s3a: bool = False
) -> Any:
    """A Spark session bound to 127.0.0.1 whose Python workers run this interpreter (and, with
    `s3a`, that reads and writes s3a:// paths: `sentiment.prepare.s3a`)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in (s3a_config(settings) if s3a else {}).items():
        builder = builder.config(key, value)
    spark = (
        builder.master(master or settings.spark_master)
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
    if s3a:
        set_credentials(spark, settings)
    return spark


def _clean_batches(
    sources: list[Source],
    policy: Policy,
    options: RowOptions,
    seed: int,
    fraction: float,
    counted: Any = None,
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The Python stage: raw lines in; out, one (key = text, code) row per kept review (for the
    dedupe), a meta row per rejected line and one per partition with its counts.

    The Arrow buffers go to the compiled kernel as they are (`sentiment.reviews.clean_lines`)
    and the kept texts come back as one buffer, so a kept row never becomes a Python object;
    the few FALLBACK lines go through parse_line / clean_rows / split_of. `counted` (a Spark
    accumulator) adds up rows read, for the progress report."""
    by_path = {s.location: s for s in sources}
    classes = POLICY_CLASSES[policy]

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import uuid

        import pyarrow as pa
        import pyarrow.compute as pc

        from sentiment.text_kernel import DROP_POLICY as DROP_POLICY_CODE
        from sentiment.text_kernel import DROP_SHORT as DROP_SHORT_CODE
        from sentiment.text_kernel import FALLBACK, KEPT
        from sentiment.text_kernel import REJECT_LABEL as REJECT_LABEL_CODE

        counts: Counter[tuple[str, str | None]] = Counter()
        partition = uuid.uuid4().hex  # makes meta keys unique; no text starts with NUL
        rejects = 0

        def meta_key(record: dict[str, Any]) -> str:
            nonlocal rejects
            rejects += 1
            return f"\x00{json.dumps(record)}\x00{partition}:{rejects}"

        for batch in batches:
            if counted is not None:
                counted.add(batch.num_rows)
            lines = batch.column(0)
            files = pc.dictionary_encode(batch.column(1))
            known = [by_path[_local(f)] for f in files.dictionary.to_pylist()]
            which = files.indices.to_numpy(zero_copy_only=False)
            layouts = np.array([LAYOUT_CODES[s.layout] for s in known], dtype=np.int8)[which]
            splits = np.array([SPLIT_CODES[s.split] for s in known], dtype=np.int8)[which]
            _, offsets_buf, data_buf = lines.buffers()
            offsets = np.frombuffer(offsets_buf, dtype=np.int32)[
                lines.offset : lines.offset + len(lines) + 1
            ]
            data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf else np.zeros(0, np.uint8)
            cleaned = clean_lines(data, offsets, layouts, splits, policy, options, seed, fraction)
            status, code = cleaned.status, cleaned.code
            kept = status == KEPT
            keys = pa.Array.from_buffers(
                pa.string(),
                int(kept.sum()),
                [
                    None,
                    pa.py_buffer(cleaned.text_offsets.astype(np.int32)),
                    pa.py_buffer(cleaned.texts),
                ],
            )
            extra_keys: list[str] = []
            extra_codes: list[int] = []
            for split_code, n in zip(*np.unique(code[kept] >> 16, return_counts=True), strict=True):
                counts[(SPLITS[split_code], None)] += int(n)
            for reason_code, dropped in (
                (DROP_POLICY_CODE, DROP_POLICY),
                (DROP_SHORT_CODE, DROP_SHORT),
            ):
                for r in np.flatnonzero(status == reason_code):
                    counts[(known[which[r]].split, dropped)] += 1
            # The lines the kernel left to Python: parsed here, cleaned in one batch.
            rest = np.flatnonzero((status == REJECT_LABEL_CODE) | (status == FALLBACK))
            raw = [
                bytes(data[offsets[r] : offsets[r + 1]]).decode("utf-8", errors="replace")
                for r in rest
            ]
            parsed = [
                parse_line(line) if status[r] == FALLBACK else (None, REJECT_LABEL)
                for r, line in zip(rest, raw, strict=True)
            ]
            good = [
                (known[which[r]].layout, f[0], f[1], f[2])
                for r, (f, _) in zip(rest, parsed, strict=True)
                if f is not None
            ]
            python_rows = iter(clean_rows(good, policy, options))
            for r, line, (fields, reason) in zip(rest, raw, parsed, strict=True):
                source = known[which[r]]
                split = source.split
                if fields is not None:
                    label, text, reason = next(python_rows)
                    if reason is None and label is not None:
                        split = split_of(source.split, text, seed, fraction)
                        extra_keys.append(text)
                        extra_codes.append(row_code(split, classes.index(label)))
                if is_rejection(reason):
                    extra_keys.append(
                        meta_key({"input": str(source.path), "reason": reason, "raw": line})
                    )
                    extra_codes.append(0)
                counts[(split, reason)] += 1
            yield pa.RecordBatch.from_arrays([keys, pa.array(code[kept])], names=["key", "code"])
            if extra_keys:
                yield pa.RecordBatch.from_arrays(
                    [pa.array(extra_keys, pa.string()), pa.array(extra_codes, pa.int32())],
                    names=["key", "code"],
                )
        summary = json.dumps({"counts": [[*k, c] for k, c in counts.items()]})
        yield pa.RecordBatch.from_arrays(
            [pa.array([f"\x00{summary}\x00{partition}"]), pa.array([0], pa.int32())],
            names=["key", "code"],
        )

    return run


def _local(uri: str) -> str:
    """A source's `location` from the URI Spark names its file by (quoted, file: for a path)."""
    from urllib.parse import unquote, urlparse

    if uri.startswith("file:"):
        return str(Path(unquote(urlparse(uri).path)).resolve())
    return unquote(uri)


def prepare(
    sources: list[Source],
    output: Path | str,
    *,
    spark: Any,
    policy: Policy = Policy.BINARY,
    options: RowOptions | None = None,
    seed: int = 1,
    validation_fraction: float = 0.1,
    max_reject_ratio: float = 0.01,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the job; returns the manifest written to `output/manifest.json` (`output` a folder
    or an s3a:// URI, which Spark writes itself).

    Rows rejected for any one reason above `max_reject_ratio` of the rows read fail the job
    (DataError) and leave `output` as it was; their rejects/ folder is kept beside it, as
    `OUTPUT.rejects/` (see `rejects_beside`), for the user to look at."""
    from pyspark.sql import functions as F

    started = time.monotonic()
    options = options or RowOptions()
    say = progress or (lambda _msg: None)
    schema = "key string, code int"
    lines = spark.read.text([s.location for s in sources]).select(
        # As bytes: undecodable input must reach parse_line (as U+FFFD) rather than crash Arrow.
        F.col("value").cast("binary"),
        F.input_file_name().alias("file"),
    )
    counted = spark.sparkContext.accumulator(0)
    rows = lines.mapInArrow(
        _clean_batches(sources, policy, options, seed, validation_fraction, counted), schema
    )
    # One pass over the input, one shuffle: kept rows group by their text, so a text is written
    # once, to the split of highest priority (test, validation, train: the smallest code). Meta
    # rows (rejects, per-partition counts) have unique keys starting with NUL, which no text does.
    # Without dedupe, every row is a group of its own. The aggregate is a fixed-width int, so
    # Spark can hash-aggregate (a struct would make it sort 600-byte texts on both sides).
    unique = F.lit(0) if options.dedupe else F.monotonically_increasing_id()
    merged = rows.groupBy("key", unique.alias("unique")).agg(F.min("code").alias("code"))
    is_meta = F.col("key").startswith("\x00")
    split_name = F.element_at(F.array(*map(F.lit, SPLITS)), F.shiftright("code", 16) + 1)
    label_name = F.element_at(
        F.array(*map(F.lit, POLICY_CLASSES[policy])), F.col("code").bitwiseAND(0xFFFF) + 1
    )
    meta = F.element_at(F.split("key", "\x00"), 2)
    with staged_tree(output, last=(layout.MANIFEST,)) as tmp, _progress(spark, say, counted):
        parts = ".parts"
        (
            merged.select(
                F.when(is_meta, F.lit("_meta")).otherwise(split_name).alias("part"),
                F.when(is_meta, meta)
                .otherwise(F.concat(F.lit(LABEL_PREFIX), label_name, F.lit(" "), F.col("key")))
                .alias("v"),
            )
            .write.partitionBy("part")
            .text(spark_uri(tmp.url(parts)))
        )
        kept_by_split: Counter[str] = Counter()
        rejected: Counter[str] = Counter()
        dropped: Counter[str] = Counter()
        read = 0
        with tmp.open_write(f"{layout.REJECTS_DIR}/part-00000.jsonl") as rej:
            for part in _part_files(tmp, f"{parts}/part=_meta"):
                with tmp.open_read(part) as fh:
                    for line in fh:
                        record = json.loads(line)
                        if "counts" not in record:
                            rej.write(line)
                            continue
                        for split, reason, count in record["counts"]:
                            read += count
                            if reason is None:
                                kept_by_split[split] += count
                            elif is_rejection(reason):
                                rejected[reason] += count
                            else:
                                dropped[reason] += count
        say(f"rows read: {read:,}")
        failed = rejects_beside(output)
        _remove(failed)  # a failed run's, now stale
        error = too_many_rejects(
            read,
            rejected,
            max_reject_ratio,
            what=f"prepare {', '.join(str(s.path) for s in sources)}",
            hint=f"The rejected rows are in {failed}.",
        )
        if error is not None:
            move_tree(tmp, layout.REJECTS_DIR, failed)
            raise error
        if not rejected:
            tmp.delete_tree(layout.REJECTS_DIR)
        counts: dict[str, dict[str, int]] = {}
        for split, name in layout.PREPARED_SPLITS.items():
            counts[split] = _concatenate(tmp, f"{parts}/part={split}", name)
            say(f"{name}: {sum(counts[split].values()):,} rows")
        tmp.delete_tree(parts)
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
            "max_reject_ratio": max_reject_ratio,
            "rows_read": read,
            "rows_written": sum(written.values()),
            "counts": counts,
            "dropped": dict(dropped),
            "rejected": dict(rejected),
            "elapsed_seconds": round(time.monotonic() - started, 3),
        }
        assert read == sum(written.values()) + sum(dropped.values()) + sum(rejected.values())
        tmp.write_json(layout.MANIFEST, manifest)
    return manifest


@contextmanager
def _progress(
    spark: Any, say: Callable[[str], None], counted: Any, every: float = 5.0
) -> Iterator[None]:
    """Report rows read so far (counted as input parts finish) and the running stages' tasks
    every few seconds while the job runs (the first stage reads and cleans the input parts, the
    second dedupes and writes)."""
    stop = threading.Event()
    tracker = spark.sparkContext.statusTracker()

    def watch() -> None:
        while not stop.wait(every):
            stages = [tracker.getStageInfo(i) for i in sorted(tracker.getActiveStageIds())]
            tasks = ", ".join(
                f"stage {st.stageId}: {st.numCompletedTasks}/{st.numTasks} tasks"
                for st in stages
                if st is not None
            )
            if tasks:
                say(f"rows read so far: {counted.value:,} ({tasks})")

    thread = threading.Thread(target=watch, name="prepare-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def rejects_beside(output: Path | str) -> Path | str:
    """Where a failed run keeps its rejects/ folder: beside `output`, which it leaves alone."""
    if isinstance(output, str):
        return f"{output.rstrip('/')}.{layout.REJECTS_DIR}"
    return output.with_name(f"{output.name}.{layout.REJECTS_DIR}")


def _remove(folder: Path | str) -> None:
    if isinstance(folder, Path):
        shutil.rmtree(folder, ignore_errors=True)
    else:
        open_bucket(folder).delete_tree("")


def _part_files(bucket: Bucket, prefix: str) -> list[str]:
    """The keys of the part files Spark wrote under `prefix`, in order (not its checksums,
    markers or _SUCCESS)."""
    return [k for k in bucket.list(prefix) if k.rpartition("/")[2].startswith("part-")]


def _concatenate(bucket: Bucket, folder: str, target: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    with bucket.open_write(target) as out:
        for part in _part_files(bucket, folder):
            with bucket.open_read(part) as fh:
                for line in fh:
                    counts[line[: line.index(b" ")].decode().removeprefix(LABEL_PREFIX)] += 1
                    out.write(line)
    return dict(sorted(counts.items()))


def _describe(source: Source) -> dict[str, Any]:
    if isinstance(source.path, str):
        from sentiment.aws.s3 import S3Bucket

        parent, key = split_file_uri(source.path)
        assert isinstance(parent, S3Bucket)
        size, _, etag = str(parent.head(key)).partition(":")
        found: dict[str, Any] = {"size": int(size), "etag": etag.strip('"')}
    else:
        found = {"size": source.path.stat().st_size, "sha256": sha256_file(source.path)}
    return {
        "path": str(source.path),
        "layout": source.layout.value,
        "layout_from": "option" if source.labels is None else "labels",
        **({} if source.labels is None else {"label_counts": dict(sorted(source.labels.items()))}),
        "split": source.split,
        **found,
    }
