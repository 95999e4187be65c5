"""`evaluate_model`: predict a test set with the served inference path and write the report.

The report folder (written atomically) holds `report.json` (everything), `report.html` (one
self-contained page, plots embedded), the plots as PNGs, and the command prints a summary.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from sentiment import __version__, layout
from sentiment import metrics as m
from sentiment.errors import DataError, InputNotFound, SentimentError
from sentiment.files import atomic_directory
from sentiment.labels import LABEL_PREFIX, POLICY_CLASSES, Layout, Policy, strip_prefix
from sentiment.model import Model, load_model
from sentiment.records import read_job
from sentiment.reviews import (
    RowOptions,
    detect_file_layout,
    is_rejection,
    parse_line,
    read_lines,
    row_label,
    too_many_rejects,
)
from sentiment.storage import Bucket, LocalBucket, open_bucket
from sentiment.text import compose


@dataclass
class TestSet:
    """Texts with their true labels; `raw` says whether texts still need normalizing.

    Every line read is accounted for: scored (`texts`), dropped by the label policy (e.g. 3
    stars for a binary model) or rejected as bad input, each counted by reason."""

    texts: list[str]
    labels: list[str]
    raw: bool
    source: str
    rows_read: int
    dropped: dict[str, int]
    rejected: dict[str, int]
    # What a person reads in the error analysis (the review as written: title, then text);
    # None when it is the text itself.
    shown: list[str] | None = None
    # A CSV's raw label counts, when its layout was decided from them.
    label_counts: dict[str, int] | None = None
    # A CSV's reviews as written, title and body on lines of their own (the answers score
    # their sentences), and their star ratings in the full layout.
    sources: list[str] | None = None
    stars: list[int] | None = None


def read_test(
    path: Path,
    model: Model,
    *,
    csv_layout: Layout | None = None,
    max_reject_ratio: float = 0.01,
    policy: Policy | None = None,
) -> TestSet:
    """A prepared file (`__label__x text`) or a raw reviews CSV (labelled and cleaned as
    prepare does, in `csv_layout`, else the layout every row's label fits; by `policy`, else
    the one the model was trained with). Rows rejected for any one reason above
    `max_reject_ratio` of the rows read are an error."""
    if not path.is_file():
        raise InputNotFound(
            f"No test file at {path}.", hint="Give a prepared test.txt or a reviews CSV."
        )
    with open(path, encoding="utf-8", errors="replace") as fh:
        first = next((line for line in fh if line.strip()), "")
    if not first:
        raise DataError(
            f"The test file {path} is empty.",
            hint="Give a prepared test.txt or a reviews CSV with rows.",
        )
    test = (
        _read_prepared(path)
        if first.startswith(LABEL_PREFIX)
        else _read_csv(path, model, csv_layout, policy)
    )
    error = too_many_rejects(
        test.rows_read,
        test.rejected,
        max_reject_ratio,
        what=f"evaluate {path} ({test.source})",
        hint="Nothing was scored.",
    )
    if error is not None:
        raise error
    return test


def _read_prepared(path: Path) -> TestSet:
    texts, labels = [], []
    rejected = {"no_label": 0}
    read = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            tokens = line.split()
            if not tokens:
                continue  # a blank line holds no example
            read += 1
            names = [t for t in tokens if t.startswith(LABEL_PREFIX)]
            if not names:
                rejected["no_label"] += 1
                continue
            labels.append(strip_prefix(names[0]))
            texts.append(" ".join(t for t in tokens if not t.startswith(LABEL_PREFIX)))
    return TestSet(
        texts,
        labels,
        raw=False,
        source="prepared",
        rows_read=read,
        dropped={},
        rejected={k: v for k, v in rejected.items() if v},
    )


def _read_csv(
    path: Path, model: Model, csv_layout: Layout | None, policy: Policy | None = None
) -> TestSet:
    rejected: Counter[str] = Counter()
    rows = []
    read = 0
    for line in read_lines(path):
        read += 1
        fields, reason = parse_line(line)
        if fields is None:
            rejected[reason or "bad_row"] += 1
        else:
            rows.append(fields)
    if not rows:
        raise DataError(
            f"{path} has no readable review rows.",
            hint="Expected the Amazon reviews CSV layout: label,title,text.",
        )
    counts = None
    if csv_layout is None:
        csv_layout, counts = detect_file_layout(path)
    policy = policy or _policy_for(model)
    options = _row_options(model)
    # The policy's class names as the model names them (`1` for negative: a model read through
    # the label map), where the map gives each name to one label.
    own = dict(zip(model.answer_labels, model.classes, strict=True))
    if len(own) < len(model.classes):
        own = {}
    texts, labels, shown, sources, stars = [], [], [], [], []
    dropped: Counter[str] = Counter()
    for raw_label, title, body in rows:
        label, reason = row_label(csv_layout, raw_label, title, body, policy)
        if label is None:
            (rejected if is_rejection(reason) else dropped)[reason or "dropped"] += 1
            continue
        # A row whose text normalizes to nothing is scored too (prepare leaves it out of
        # training data; a served request with no words gets an answer all the same).
        labels.append(own.get(label, label))
        texts.append(compose(title, body, options.include_title, options.title_weight))
        readable = [part.replace("\\n", " ").strip() for part in (title, body)]
        shown.append(" — ".join(part for part in readable if part))
        parts = [part.replace("\\n", "\n").strip() for part in (title, body)]
        sources.append("\n".join(part for part in parts if part))
        stars.append(int(raw_label))
    return TestSet(
        texts,
        labels,
        raw=True,
        source=f"csv ({csv_layout.value} layout, {policy.value} policy)",
        rows_read=read,
        dropped=dict(dropped),
        rejected=dict(rejected),
        shown=shown,
        label_counts=counts,
        sources=sources,
        stars=stars if csv_layout == Layout.FULL else None,
    )


def _policy_for(model: Model) -> Policy:
    if model.preprocessing.policy:
        return Policy(model.preprocessing.policy)
    classes = set(model.answer_labels)
    for policy, names in POLICY_CLASSES.items():
        if classes == set(names):
            return policy
    raise DataError(
        f"Cannot tell which label policy the model's labels {sorted(classes)} come from, so a raw CSV cannot be labelled.",
        hint="Evaluate on a prepared test.txt instead.",
    )


def _row_options(model: Model) -> RowOptions:
    """How the model's training rows became text (its record: title in, weight 1 without
    one, as the seed exercise), read as prepare's manifest is (`RowOptions.from_dict`)."""
    recorded = RowOptions.from_dict({"title_weight": 1, **model.preprocessing.rows})
    return RowOptions(
        cleaning=model.preprocessing.cleaning,
        include_title=recorded.include_title,
        title_weight=recorded.title_weight,
    )


def check_labels(test: TestSet, model: Model) -> None:
    found = set(test.labels)
    if not found:
        raise DataError(
            "The test file has no labelled rows.", hint="Give a prepared test.txt or a reviews CSV."
        )
    unknown = found - set(model.classes)
    if not unknown:
        return
    fits = [p.value for p, names in POLICY_CLASSES.items() if found <= set(names)]
    if not fits and any(found & set(names) for names in POLICY_CLASSES.values()):
        raise DataError(
            f"The test file mixes label sets: {sorted(found)} fit no single policy.",
            hint="Prepare the test data with one --policy (binary, ternary or stars).",
        )
    raise DataError(
        f"The test file has labels the model does not know: {sorted(unknown)} (model labels: {list(model.classes)}).",
        hint="Prepare the test set with the policy the model was trained with.",
    )


def score(model: Model, test: TestSet) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(true label index, probabilities in `labels` order, labels) through Model.predict_proba."""
    labels = list(model.classes)
    index = {name: i for i, name in enumerate(labels)}
    y_true = np.array([index[name] for name in test.labels], dtype=np.int64)
    probs = np.zeros((len(test.texts), len(labels)))
    for start in range(0, len(test.texts), 4096):
        chunk = test.texts[start : start + 4096]
        # Prepared text is what the model reads already; raw text is normalized on the way in.
        probs[start : start + len(chunk)] = model.predict_proba(chunk, raw=not test.raw)
    return y_true, probs, labels


def compute(model: Model, test: TestSet) -> dict[str, Any]:
    y_true, probs, labels = score(model, test)
    report = m.classification(y_true, probs, labels)
    report["calibration"] = m.calibration(y_true, probs)
    if model.calibration is not None:
        raw = model.predict_proba(test.texts, raw=not test.raw, raw_scores=True)
        report["calibration_before"] = m.calibration(y_true, raw)
    report["coverage"] = m.coverage(y_true, probs)
    report["confident_errors"] = m.confident_errors(y_true, probs, test.shown or test.texts, labels)
    if len(labels) == 2:
        positive = labels.index("positive") if "positive" in labels else 1
        binary = (y_true == positive).astype(np.int64)
        s = probs[:, positive]
        report["binary"] = {
            "positive_label": labels[positive],
            "roc_auc": m.roc_auc(binary, s),
            "pr_auc": m.average_precision(binary, s),
        }
        fpr, tpr = m.roc_curve(binary, s)
        recall, precision = m.pr_curve(binary, s)
        report["_curves"] = {"fpr": fpr, "tpr": tpr, "recall": recall, "precision": precision}
    return report


def find_job_record(ref: str | Path, bucket: Bucket | None) -> dict[str, Any] | None:
    """The training job behind a model reference, when there is one (for the learning curve),
    read as `sentiment jobs describe` reads it."""
    path = Path(ref)
    if bucket is not None and "/" not in str(ref) and not path.exists():
        try:
            return read_job(bucket, str(ref))
        except SentimentError:
            return None
    if path.name == layout.MODEL_ARCHIVE:
        folder = path.parent.parent
    elif path.is_dir():
        folder = path if (path / layout.JOB_RECORD).is_file() else path.parent
    else:
        return None
    if not (folder / layout.JOB_RECORD).is_file():
        return None
    try:
        return read_job(open_bucket(str(folder.parent)), folder.name)
    except SentimentError:
        return None


def evaluate_model(
    model_ref: str | Path,
    test_path: Path,
    output: Path,
    *,
    baseline: str | Path | None = None,
    bucket: Bucket | None = None,
    settings: Any = None,
    console: Console | None = None,
    csv_layout: Layout | None = None,
) -> dict[str, Any]:
    """Evaluate a model on a test file; write the report folder; return report.json's content.

    A reviews CSV is read in `csv_layout` (default: the layout every row's label fits)."""
    console = console or Console(stderr=True)
    cache = settings.cache_dir if settings is not None else None
    ratio = settings.max_reject_ratio if settings is not None else 0.01
    started = time.perf_counter()
    label_map = settings.label_map if settings is not None else None
    model = load_model(model_ref, bucket=bucket, cache_dir=cache, label_map=label_map)
    test = read_test(test_path, model, csv_layout=csv_layout, max_reject_ratio=ratio)
    check_labels(test, model)
    with console.status(f"predicting {len(test.texts):,} texts with {model.name}"):
        result = compute(model, test)
        result["answers"] = _answers(model, test)
    curves = result.pop("_curves", None)
    job = find_job_record(model_ref, bucket)
    report: dict[str, Any] = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "version": __version__,
        "model": model.describe() | {"ref": str(model_ref)},
        "test": {
            "path": str(test_path),
            "source": test.source,
            "examples": len(test.texts),
            "rows_read": test.rows_read,
            "dropped": test.dropped,
            "rejected": test.rejected,
            "label_counts": test.label_counts,
        },
        "metrics": result,
        "learning_curve": job.get("epochs") if job else None,
        "job": {
            k: job.get(k)
            for k in (
                "name",
                "status",
                "hyperparameters",
                "best_epoch",
                "stopped_early",
                "final_metrics",
                "tuning_job",
            )
        }
        if job
        else None,
    }
    base_result = None
    if baseline is not None:
        base_model = load_model(baseline, bucket=bucket, cache_dir=cache, label_map=label_map)
        base_test = read_test(test_path, base_model, csv_layout=csv_layout, max_reject_ratio=ratio)
        check_labels(base_test, base_model)
        base_result = compute(base_model, base_test)
        base_result.pop("_curves", None)
        report["baseline"] = {
            "model": base_model.describe() | {"ref": str(baseline)},
            "metrics": base_result,
        }
        report["differences"] = _differences(result, base_result)
    report["seconds"] = round(time.perf_counter() - started, 3)
    from sentiment.evaluate import html_report, plots

    with atomic_directory(output) as tmp:
        images = plots.write_all(tmp, result, curves, report["learning_curve"])
        if result.get("answers"):
            images += plots.answers_reliability(tmp, result["answers"])
        images += _tuning_plots(tmp, job, bucket)
        (tmp / "report.json").write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
        (tmp / "report.html").write_text(
            html_report.render(report, {name: _data_uri(tmp / name) for name in images})
        )
    print_summary(console, report)
    return report


def _tuning_plots(folder: Path, job: dict[str, Any] | None, bucket: Bucket | None) -> list[str]:
    """The plots of the tuning job that chose the model's hyperparameters, copied in."""
    if job is None or not isinstance(bucket, LocalBucket):
        return []  # tuning jobs live in local buckets only
    from sentiment.train.tuning import tuning_plots

    names = []
    for path in tuning_plots(bucket, job):
        shutil.copyfile(path, folder / path.name)
        names.append(path.name)
    return names


def _answers(model: Model, test: TestSet) -> dict[str, Any] | None:
    """The four answers' section, for a model whose labels map to polarity (else None)."""
    from sentiment.answers import POLARITY
    from sentiment.evaluate import answers

    if not set(model.answer_labels) <= set(POLARITY):
        return None
    return answers.compute(
        model, test.texts, test.labels, test.raw, sources=test.sources, stars=test.stars
    )


def _differences(ours: dict[str, Any], base: dict[str, Any]) -> dict[str, float | None]:
    def diff(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    out = {
        "accuracy": diff(ours["accuracy"], base["accuracy"]),
        "macro_f1": diff(ours["macro"]["f1"], base["macro"]["f1"]),
        "log_loss": diff(ours["log_loss"], base["log_loss"]),
        "ece": diff(ours["calibration"]["ece"], base["calibration"]["ece"]),
    }
    if "binary" in ours and "binary" in base:
        out["roc_auc"] = diff(ours["binary"]["roc_auc"], base["binary"]["roc_auc"])
        out["pr_auc"] = diff(ours["binary"]["pr_auc"], base["binary"]["pr_auc"])
    return out


def print_summary(console: Console, report: dict[str, Any]) -> None:
    metrics = report["metrics"]
    base = report.get("baseline", {}).get("metrics")
    table = Table(
        title=f"{report['model']['name']} on {report['test']['path']} ({report['test']['examples']:,} examples)"
    )
    table.add_column("metric")
    table.add_column("model", justify="right")
    if base:
        table.add_column("baseline", justify="right")
        table.add_column("difference", justify="right")

    def row(name: str, ours: float | None, theirs: float | None = None) -> None:
        cells = [name, _fmt(ours)]
        if base:
            cells += [
                _fmt(theirs),
                _fmt(None if ours is None or theirs is None else ours - theirs, signed=True),
            ]
        table.add_row(*cells)

    row("accuracy", metrics["accuracy"], base and base["accuracy"])
    row("macro F1", metrics["macro"]["f1"], base and base["macro"]["f1"])
    row("weighted F1", metrics["weighted"]["f1"], base and base["weighted"]["f1"])
    row("log loss", metrics["log_loss"], base and base["log_loss"])
    row(
        "calibration error (ECE)",
        metrics["calibration"]["ece"],
        base and base["calibration"]["ece"],
    )
    if "binary" in metrics:
        row("ROC-AUC", metrics["binary"]["roc_auc"], base and base.get("binary", {}).get("roc_auc"))
        row("PR-AUC", metrics["binary"]["pr_auc"], base and base.get("binary", {}).get("pr_auc"))
    for name, values in metrics["per_label"].items():
        row(
            f"F1 {name} (n={values['support']:,})",
            values["f1"],
            base and base["per_label"].get(name, {}).get("f1"),
        )
    console.print(table)
    section = metrics.get("answers")
    if section:
        targets = Table(title="Four answers (issue 13's targets)")
        for column in ("target", "value", "goal", "result"):
            targets.add_column(column, justify="left" if column == "target" else "right")
        for t in section["targets"]:
            verdict = "[green]pass[/]" if t["passed"] else "[red]FAIL[/]"
            targets.add_row(t["name"], _fmt(t["value"]), t["goal"], verdict)
        targets.add_row("calibration error before calibration", _fmt(section["ece_before"]), "", "")
        console.print(targets)


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
