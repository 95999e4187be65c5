"""Classification metrics from true labels and predicted probabilities, in numpy: the
evaluation report's, and the macro-F1 a tuning job may optimize (`sentiment.train.tuning`).

Written here rather than taken from scikit-learn: they are a page of well-known formulas, each
checked against a hand-computed case in the tests, and scikit-learn would be a 40 MB dependency
for them. Definitions follow scikit-learn's where it has one (average precision is the
step-wise area `sum((R_n - R_{n-1}) * P_n)`, ROC-AUC the Mann-Whitney statistic with ties
counted as half).
"""

from __future__ import annotations

from typing import Any

import numpy as np

COVERAGE_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def classification(y_true: np.ndarray, probs: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, per-label precision/recall/F1/support, averages, confusion matrix, log loss."""
    n, k = probs.shape
    y_pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_label = {}
    for i, name in enumerate(labels):
        tp = confusion[i, i]
        predicted = confusion[:, i].sum()
        actual = confusion[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    supports = np.array([per_label[name]["support"] for name in labels], dtype=np.float64)
    present = supports > 0

    def average(key: str, weighted: bool) -> float:
        values = np.array([per_label[name][key] for name in labels])
        if weighted:
            return float((values * supports).sum() / supports.sum()) if supports.sum() else 0.0
        return float(values[present].mean()) if present.any() else 0.0

    return {
        "examples": int(n),
        "accuracy": float((y_pred == y_true).mean()) if n else 0.0,
        "per_label": per_label,
        "macro": {key: average(key, False) for key in ("precision", "recall", "f1")},
        "weighted": {key: average(key, True) for key in ("precision", "recall", "f1")},
        "confusion_matrix": {"labels": labels, "rows_true_columns_predicted": confusion.tolist()},
        "log_loss": log_loss(y_true, probs),
    }


def log_loss(y_true: np.ndarray, probs: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log probability of the true label (probabilities clipped to [eps, 1-eps])."""
    p = np.clip(probs[np.arange(len(y_true)), y_true], eps, 1 - eps)
    return float(-np.log(p).mean()) if len(y_true) else 0.0


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve for a binary problem (y_true in {0, 1}); None if one class only."""
    pos = y_true == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), np.float64)
    sorted_scores = score[order]
    # Average ranks over ties.
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold."""
    order = np.argsort(-score, kind="mergesort")
    y, s = y_true[order], score[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    return np.r_[0, fps / max(1, fps[-1])], np.r_[0, tps / max(1, tps[-1])]


def pr_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct threshold, highest threshold first."""
    order = np.argsort(-score, kind="mergesort")
    y, s = y_true[order], score[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / max(1, y.sum())
    return recall, precision


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """PR-AUC as average precision: sum over thresholds of (R_n - R_{n-1}) * P_n."""
    if y_true.sum() == 0:
        return None
    recall, precision = pr_curve(y_true, score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def calibration(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Reliability diagram bins over the top-1 confidence, and the expected calibration error."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table = []
    ece = 0.0
    n = len(y_true)
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        acc: float | None
        conf: float | None
        if count:
            acc = float(correct[mask].mean())
            conf = float(confidence[mask].mean())
            ece += abs(acc - conf) * count / n
        else:
            acc = conf = None
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": count,
                "accuracy": acc,
                "confidence": conf,
            }
        )
    return {"bins": table, "ece": float(ece)}


def coverage(y_true: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """Accuracy when answers below a confidence threshold are withheld ("not sure")."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    n = len(y_true)

    def at(threshold: float) -> dict[str, Any]:
        kept = confidence >= threshold
        count = int(kept.sum())
        return {
            "threshold": threshold,
            "coverage": count / n if n else 0.0,
            "accuracy": float(correct[kept].mean()) if count else None,
            "withheld": n - count,
        }

    curve = [at(float(t)) for t in np.round(np.linspace(0.0, 1.0, 101), 2)]
    return {"table": [at(t) for t in COVERAGE_THRESHOLDS], "curve": curve}


def confident_errors(
    y_true: np.ndarray, probs: np.ndarray, texts: list[str], labels: list[str], per_label: int = 5
) -> dict[str, list[dict[str, Any]]]:
    """The most confidently wrong examples for each true label, with their text."""
    y_pred = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    out: dict[str, list[dict[str, Any]]] = {}
    for i, name in enumerate(labels):
        wrong = np.flatnonzero((y_true == i) & (y_pred != i))
        worst = wrong[np.argsort(-confidence[wrong], kind="mergesort")][:per_label]
        out[name] = [
            {
                "index": int(r),
                "text": texts[r],
                "predicted": labels[int(y_pred[r])],
                "confidence": float(confidence[r]),
            }
            for r in worst
        ]
    return out
