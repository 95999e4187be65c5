"""Evaluation reports: metrics, plots, errors, learning curve (`sentiment evaluate`)."""

from sentiment.evaluate.report import evaluate_model

__all__ = ["evaluate_model"]
