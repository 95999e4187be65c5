"""report.html: one self-contained page (plots embedded as data URIs, no external assets)."""

from __future__ import annotations

from html import escape
from typing import Any

from sentiment.answers import SENTIMENTS

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;color:#1f2328;max-width:70rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}.kpi{display:flex;gap:1rem;flex-wrap:wrap}
.kpi div{border:1px solid #d0d7de;border-radius:6px;padding:.5rem 1rem}.kpi b{display:block;font-size:1.4rem}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plots figure{margin:0}.plots img{max-width:100%;border:1px solid #eee}
.err{font-size:.9rem}.muted{color:#57606a}
"""


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def render(report: dict[str, Any], images: dict[str, str]) -> str:
    m = report["metrics"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Evaluation of {escape(report['model']['name'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Evaluation of {escape(report['model']['name'])}</h1>",
        f"<p class='muted'>Test set {escape(report['test']['path'])} ({report['test']['examples']:,} examples, "
        f"{escape(report['test']['source'])}); created {escape(report['created'])}; model sha256 "
        f"{escape(report['model']['sha256'][:16])}…</p>",
        "<div class='kpi'>",
        f"<div id='accuracy'>accuracy<b>{m['accuracy']:.4f}</b></div>",
        f"<div>macro F1<b>{m['macro']['f1']:.4f}</b></div>",
        f"<div>log loss<b>{m['log_loss']:.4f}</b></div>",
        f"<div>ECE<b>{m['calibration']['ece']:.4f}</b></div>",
    ]
    if "binary" in m:
        parts.append(
            f"<div>ROC-AUC<b>{_f(m['binary']['roc_auc'])}</b></div><div>PR-AUC<b>{_f(m['binary']['pr_auc'])}</b></div>"
        )
    parts.append("</div>")
    if m.get("answers"):
        parts.append(_answers(m["answers"], images))
    if "baseline" in report:
        parts.append(_baseline(report))
    parts.append(
        "<h2>Per label</h2><table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
    )
    for name, v in m["per_label"].items():
        parts.append(
            f"<tr><td>{escape(name)}</td><td>{v['precision']:.4f}</td><td>{v['recall']:.4f}</td><td>{v['f1']:.4f}</td><td>{v['support']:,}</td></tr>"
        )
    for avg in ("macro", "weighted"):
        v = m[avg]
        parts.append(
            f"<tr><td><i>{avg} average</i></td><td>{v['precision']:.4f}</td><td>{v['recall']:.4f}</td><td>{v['f1']:.4f}</td><td></td></tr>"
        )
    parts.append("</table><h2>Plots</h2><div class='plots'>")
    captions = {
        "confusion_matrix.png": "Confusion matrix",
        "reliability.png": "Reliability diagram",
        "coverage.png": "Accuracy vs coverage",
        "roc.png": "ROC curve",
        "pr.png": "Precision-recall curve",
        "learning_curve.png": "Learning curve",
        "tuning_objective.png": "Tuning: objective by trial",
        "tuning_importance.png": "Tuning: hyperparameter importance",
    }
    for name, uri in images.items():
        if name.startswith("answers_"):
            continue  # shown in the answers' section
        parts.append(
            f"<figure><img src='{uri}' alt='{captions.get(name, name)}' data-plot='{name}'><figcaption>{captions.get(name, name)}</figcaption></figure>"
        )
    parts.append(
        "</div><h2>Withholding low-confidence answers</h2><table><tr><th>answer when confidence ≥</th><th>coverage</th><th>accuracy</th><th>withheld</th></tr>"
    )
    for row in m["coverage"]["table"]:
        parts.append(
            f"<tr><td>{row['threshold']:g}</td><td>{row['coverage']:.1%}</td><td>{_f(row['accuracy'])}</td><td>{row['withheld']:,}</td></tr>"
        )
    parts.append("</table><h2>Most confidently wrong</h2>")
    for label, rows in m["confident_errors"].items():
        parts.append(
            f"<h3>true label: {escape(label)}</h3><table class='err'><tr><th>text</th><th>predicted</th><th>confidence</th></tr>"
        )
        for r in rows:
            parts.append(
                f"<tr><td>{escape(r['text'][:400])}</td><td>{escape(r['predicted'])}</td><td>{r['confidence']:.3f}</td></tr>"
            )
        parts.append("</table>")
    if report.get("job"):
        job = report["job"]
        parts.append(
            f"<h2>Training job</h2><p>{escape(job['name'])}: {escape(job['status'])}, best epoch {_f(job.get('best_epoch'))}, "
            f"stopped early: {_f(job.get('stopped_early'))}. Hyperparameters: <code>{escape(' '.join(f'{k}={v}' for k, v in (job.get('hyperparameters') or {}).items()))}</code></p>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _baseline(report: dict[str, Any]) -> str:
    b = report["baseline"]
    rows = [
        "<h2>Against the baseline</h2>",
        f"<p>Baseline: {escape(b['model']['name'])}</p>",
        "<table><tr><th>metric</th><th>model</th><th>baseline</th><th>difference</th></tr>",
    ]
    ours, theirs = report["metrics"], b["metrics"]
    pairs = [
        ("accuracy", ours["accuracy"], theirs["accuracy"]),
        ("macro F1", ours["macro"]["f1"], theirs["macro"]["f1"]),
        ("log loss", ours["log_loss"], theirs["log_loss"]),
        ("ECE", ours["calibration"]["ece"], theirs["calibration"]["ece"]),
    ]
    for name, a, c in pairs:
        rows.append(
            f"<tr><td>{name}</td><td>{a:.4f}</td><td>{c:.4f}</td><td>{a - c:+.4f}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _answers(section: dict[str, Any], images: dict[str, str]) -> str:
    """The report's "Four answers" section (sentiment.evaluate.answers computes it)."""
    parts = [
        "<h2>Four answers: positive, negative, neutral, mixed</h2>",
        f"<p class='muted'>{escape(str(section['derivation']))}</p>",
        "<table><tr><th>target</th><th>value</th><th>goal</th><th>result</th></tr>",
    ]
    for t in section["targets"]:
        verdict = "pass" if t["passed"] else "FAIL"
        parts.append(
            f"<tr data-target='{escape(str(t['name']))}'><td>{escape(str(t['name']))}</td><td>{t['value']:.4f}</td>"
            f"<td>{escape(str(t['goal']))}</td><td><b>{verdict}</b></td></tr>"
        )
    parts.append(
        f"<tr><td>ECE before calibration</td><td>{section['ece_before']:.4f}</td><td></td><td></td></tr></table>"
    )
    for title, key in (
        ("What each star rating was answered", "stars"),
        ("What each true label was answered", "answered"),
    ):
        table = section.get(key)
        if not table:
            continue
        parts.append(f"<h3>{title}</h3><table class='answers'><tr><th></th><th>n</th>")
        parts += [f"<th>{s}</th>" for s in SENTIMENTS]
        parts.append("</tr>")
        for group, row in table.items():
            cells = "".join(f"<td>{row[s]:.1%}</td>" for s in SENTIMENTS)
            parts.append(
                f"<tr><td>{escape(str(group))}</td><td>{row['examples']:,}</td>{cells}</tr>"
            )
        parts.append("</table>")
    parts.append("<div class='plots'>")
    for name in ("answers_reliability_before.png", "answers_reliability_after.png"):
        if name in images:
            parts.append(
                f"<figure><img src='{images[name]}' alt='{name}' data-plot='{name}'></figure>"
            )
    parts.append("</div>")
    return "\n".join(parts)
