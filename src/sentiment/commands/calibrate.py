"""`sentiment calibrate`: a calibration for a model trained elsewhere (SageMaker's BlazingText).

A training job of ours fits its calibration on its validation split; a model brought from
SageMaker has none, and fastText's raw scores are saturated (a one-word text at 0.99998). This
fits the same calibration (`sentiment.calibration.fit_labelled`, what a job's `fit_file` runs)
on held-out labelled data read as `sentiment evaluate` reads a test file, and writes a new
model.tar.gz: model.bin byte for byte, calibration.json, and the source's preprocessing.json
when it had one. The input model is left as it was.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import click

from sentiment.commands.options import (
    label_map_option,
    layout_option,
    max_reject_ratio_option,
    model_option,
)
from sentiment.commands.tables import reason_counts
from sentiment.labels import LabelMap, Layout, Policy

# Fewer held-out rows than this fit a calibration on noise: the ECE of 10 bins over 200 rows
# is already +-0.03 from sampling alone.
MIN_ROWS = 200


@click.command()
@model_option
@click.option(
    "--validation",
    required=True,
    help="Held-out labelled data the model was not trained on: a prepared file "
    "(__label__x text) or a reviews CSV (a path or s3:// URI).",
)
@click.option(
    "--output",
    required=True,
    help="The calibrated model.tar.gz to write (a path or s3:// URI).",
)
@layout_option("a reviews CSV")
@click.option(
    "--policy",
    "policy_name",
    type=click.Choice([p.value for p in Policy]),
    help="Label policy of a reviews CSV (default: the model's, from its preprocessing.json "
    "or its label names).",
)
@max_reject_ratio_option
@label_map_option
@click.pass_context
def command(
    ctx: click.Context,
    model: str,
    validation: str,
    output: str,
    layout_name: str | None,
    policy_name: str | None,
    max_reject_ratio: float | None,
    label_map: LabelMap | None,
) -> None:
    """Fit a calibration on held-out data and write the model with it as a new model.tar.gz.

    Example: sentiment calibrate --model s3://bucket/blazingtext/output/model.tar.gz
    --validation test.csv --label-map 1=negative,2=positive --output calibrated/model.tar.gz
    """
    from rich.console import Console

    from sentiment.storage import open_bucket

    settings = ctx.obj.settings.replace(max_reject_ratio=max_reject_ratio, label_map=label_map)
    console = Console(stderr=True)
    result = calibrate(
        model,
        validation,
        output,
        bucket=open_bucket(settings.bucket),
        settings=settings,
        csv_layout=Layout(layout_name) if layout_name else None,
        policy=Policy(policy_name) if policy_name else None,
    )
    _print(console, result)
    click.echo(f"Calibrated model: {output}")


def calibrate(
    model_ref: str,
    validation: str,
    output: str,
    *,
    bucket: Any,
    settings: Any,
    csv_layout: Layout | None,
    policy: Policy | None,
) -> dict[str, Any]:
    """Fit, write `output`, and return what was done (rows, the fit's figures)."""

    from sentiment import layout
    from sentiment.calibration import fit_labelled
    from sentiment.errors import DataError, InputNotFound, UsageError
    from sentiment.evaluate.report import read_test
    from sentiment.model import load_model, write_model_archive
    from sentiment.remote import stage_input
    from sentiment.storage import is_remote, split_file_uri

    if not output.endswith((".tar.gz", ".tgz")):
        raise UsageError(
            f"--output {output!r} must name a model.tar.gz.",
            hint="E.g. --output calibrated/model.tar.gz (or s3://BUCKET/prefix/model.tar.gz).",
        )
    local_out = None if is_remote(output) else Path(output.removeprefix("file://")).expanduser()
    source = Path(model_ref).expanduser()
    if local_out is not None and source.is_file() and local_out.resolve() == source.resolve():
        raise UsageError(
            f"--output {output!r} is the input model; calibrate leaves the input as it was.",
            hint="Write the calibrated model to another path.",
        )
    path = stage_input(validation, settings.cache_dir)
    if not path.is_file():
        raise InputNotFound(
            f"No validation file at {validation}.",
            hint="Give held-out labelled data: a prepared file (__label__x text) or a reviews CSV.",
        )
    model = load_model(
        model_ref, bucket=bucket, cache_dir=settings.cache_dir, label_map=settings.label_map
    )
    data = read_test(
        path,
        model,
        csv_layout=csv_layout,
        max_reject_ratio=settings.max_reject_ratio,
        policy=policy,
    )
    index = {name: i for i, name in enumerate(model.classes)}
    texts, y = [], []
    skipped: Counter[str] = Counter()
    # Prepared text is what the model reads; a CSV's is normalized as the model's cleaning says.
    read = model.prepare_texts(data.texts) if data.raw else data.texts
    for text, label in zip(read, data.labels, strict=True):
        if label in index:
            texts.append(text)
            y.append(index[label])
        else:
            skipped[label] += 1
    if not texts:
        raise DataError(
            f"None of the {len(data.labels):,} labelled rows of {validation} has a label the "
            f"model knows (the file's: {sorted(skipped)}; the model's: {list(model.classes)}).",
            hint="Give data labelled as the model is (--label-map for a model whose labels are "
            "not ours, --policy for a reviews CSV).",
        )
    if len(texts) < MIN_ROWS:
        raise DataError(
            f"Only {len(texts):,} rows of {validation} have a label the model knows; a "
            f"calibration needs at least {MIN_ROWS}.",
            hint="Give more held-out labelled rows.",
        )
    if len(set(y)) < 2:
        raise DataError(
            f"Every usable row of {validation} is labelled {model.classes[y[0]]!r}: a "
            "calibration needs rows of more than one class.",
            hint="Give held-out data with rows of each class (not a file sorted by label, cut).",
        )
    calibration = fit_labelled(model, texts, y)
    figures = calibration.stats  # measured on these rows, with the short-text term
    sidecars = {layout.CALIBRATION: json.dumps(calibration.to_dict(), indent=2).encode()}
    pre = model.path.parent / layout.PREPROCESSING
    if pre.is_file():  # a bare SageMaker model has none: served with the unrecorded cleaning
        sidecars[layout.PREPROCESSING] = pre.read_bytes()
    if local_out is not None:
        write_model_archive(local_out, model.path, sidecars)
    else:
        settings.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="calibrate-", dir=settings.cache_dir) as tmp:
            archive = Path(tmp) / layout.MODEL_ARCHIVE
            write_model_archive(archive, model.path, sidecars)
            target, key = split_file_uri(output)
            target.put_file(key, archive)
    return {
        "calibration": calibration,
        "figures": figures,
        "rows_read": data.rows_read,
        "used": len(texts),
        "skipped": dict(skipped),
        "dropped": data.dropped,
        "rejected": data.rejected,
        "source": data.source,
        "had_calibration": model.calibration is not None,
    }


def _print(console: Any, result: dict[str, Any]) -> None:
    from rich.table import Table

    calibration, figures = result["calibration"], result["figures"]
    table = Table(title=f"Calibration on {figures['examples']:,} held-out rows")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_row("NLL", f"{figures['nll_before']:.4f}", f"{figures['nll_after']:.4f}")
    table.add_row("ECE", f"{figures['ece_before']:.4f}", f"{figures['ece_after']:.4f}")
    console.print(table)
    console.print(
        f"T={calibration.temperature:.3f}, n0={calibration.length:g}, "
        f"L={calibration.length_scale:g} ({result['source']}); "
        f"rows: {result['used']:,} used of {result['rows_read']:,} read; "
        f"skipped (label the model lacks): {reason_counts(result['skipped'])}; "
        f"dropped: {reason_counts(result['dropped'])}; rejected: {reason_counts(result['rejected'])}.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    if figures["ece_after"] > figures["ece_before"]:
        # The short-text term tempers reviews too (less with its fade-out, L): a model
        # already calibrated on reviews can come out a little worse on them.
        console.print(
            "Note: the model's raw scores are better calibrated (ECE) on these rows than the "
            "fit's: its short-text term tempers reviews too."
        )
    if result["had_calibration"]:
        console.print("The model's own calibration.json is replaced in the output.")
