"""The report's plots (matplotlib, Agg backend): written as PNGs into the report folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def write_all(
    folder: Path,
    metrics: dict[str, Any],
    curves: dict[str, Any] | None,
    epochs: list[dict[str, Any]] | None,
) -> list[str]:
    """Write every plot that applies; returns the file names."""
    names = [
        _save(folder, "confusion_matrix.png", confusion(metrics)),
        _save(folder, "reliability.png", reliability(metrics)),
        _save(folder, "coverage.png", coverage(metrics)),
    ]
    if curves is not None:
        names.append(_save(folder, "roc.png", roc(metrics, curves)))
        names.append(_save(folder, "pr.png", pr(metrics, curves)))
    if epochs:
        names.append(_save(folder, "learning_curve.png", learning_curve(epochs)))
    return names


def _save(folder: Path, name: str, fig: Any) -> str:
    fig.tight_layout()
    fig.savefig(folder / name, dpi=110)
    plt.close(fig)
    return name


def confusion(metrics: dict[str, Any]) -> Any:
    labels = metrics["confusion_matrix"]["labels"]
    matrix = np.array(metrics["confusion_matrix"]["rows_true_columns_predicted"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = 1.2 + 0.9 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j,
                i,
                f"{int(matrix[i, j]):,}\n{share[i, j]:.0%}",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
                fontsize=9,
            )
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true label")
    ax.set_title("Confusion matrix")
    return fig


def reliability(metrics: dict[str, Any]) -> Any:
    bins = [b for b in metrics["calibration"]["bins"] if b["count"]]
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    centers = [(b["low"] + b["high"]) / 2 for b in bins]
    ax.bar(centers, [b["accuracy"] for b in bins], width=0.09, alpha=0.7, label="accuracy in bin")
    ax.plot(
        [b["confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        "o-",
        color="C3",
        label="mean confidence",
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top label probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability (ECE {metrics['calibration']['ece']:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def answers_reliability(folder: Path, section: dict[str, Any]) -> list[str]:
    """Reliability of the four answers' merged scores before and after calibration."""
    names = []
    for when in ("before", "after"):
        fig = reliability({"calibration": section[f"reliability_{when}"]})
        fig.axes[0].set_title(
            f"Answers {when} calibration (ECE {section[f'reliability_{when}']['ece']:.3f})"
        )
        names.append(_save(folder, f"answers_reliability_{when}.png", fig))
    return names


def coverage(metrics: dict[str, Any]) -> Any:
    curve = [c for c in metrics["coverage"]["curve"] if c["accuracy"] is not None]
    fig, ax = plt.subplots(figsize=(5, 4.2))
    ax.plot([c["coverage"] for c in curve], [c["accuracy"] for c in curve], color="C0")
    for c in metrics["coverage"]["table"]:
        if c["accuracy"] is not None:
            ax.annotate(
                f"≥{c['threshold']:g}",
                (c["coverage"], c["accuracy"]),
                fontsize=7,
                xytext=(3, -10),
                textcoords="offset points",
            )
            ax.plot(c["coverage"], c["accuracy"], "o", color="C1", ms=4)
    ax.set_xlabel("coverage (share answered)")
    ax.set_ylabel("accuracy of the answers given")
    ax.set_title("Accuracy vs coverage (withholding low confidence)")
    ax.set_xlim(0, 1.02)
    return fig


def roc(metrics: dict[str, Any], curves: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot(curves["fpr"], curves["tpr"])
    ax.plot([0, 1], [0, 1], ls="--", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC (AUC {metrics['binary']['roc_auc']:.3f})")
    return fig


def pr(metrics: dict[str, Any], curves: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot(curves["recall"], curves["precision"])
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Precision-recall (AP {metrics['binary']['pr_auc']:.3f})")
    return fig


def learning_curve(epochs: list[dict[str, Any]]) -> Any:
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    x = [e["epoch"] for e in epochs]
    ax.plot(x, [e["train_accuracy"] for e in epochs], "o-", label="train accuracy")
    valid = [
        (e["epoch"], e["validation_accuracy"])
        for e in epochs
        if e.get("validation_accuracy") is not None
    ]
    if valid:
        ax.plot([v[0] for v in valid], [v[1] for v in valid], "o-", label="validation accuracy")
        best = max(valid, key=lambda v: v[1])
        ax.axvline(best[0], ls=":", color="grey", label=f"best epoch ({best[0]})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_title("Learning curve (training job)")
    ax.legend(fontsize=8)
    return fig
