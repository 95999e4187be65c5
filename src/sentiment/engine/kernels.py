"""The numeric core: fastText's supervised update and prediction (compiled in `_core.c`).

Training is hogwild SGD as in fastText: each thread takes its own contiguous share of the lines
and updates the shared matrices without locks. For one line: the hidden vector is the mean of
the input rows of its ids; the softmax over the labels is computed from the output matrix; each
output row moves by `alpha = lr * (1[target] - p)` times the hidden vector while the gradient
of the hidden vector accumulates `alpha * row` (read before the row moves); the gradient,
divided by the number of ids, is added to every input row of the line. The learning rate decays
linearly with the tokens processed over all planned epochs.

These wrappers give the arrays the dtypes the C code reads (a no-op for arrays that have them)
and allocate the outputs; the C code checks sizes and every id before it touches memory.
"""

from __future__ import annotations

import os

import numpy as np

from sentiment.engine import _core

MAX_THREADS = 256  # _core.c's limit


def cores() -> int:
    """The cores this process may run on (training and evaluation use that many threads)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.float32)


def _i32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.int32)


def _i64(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, np.int64)


def _weights(wi: np.ndarray, wo: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    if wi.ndim != 2 or wo.ndim != 2 or wi.shape[1] != wo.shape[1]:
        raise ValueError(f"weights of shapes {wi.shape} and {wo.shape} do not share a dimension")
    return wi, wo, int(wi.shape[1])


def train_lines(
    wi: np.ndarray,
    wo: np.ndarray,
    line_ptr: np.ndarray,
    ids: np.ndarray,
    label_ptr: np.ndarray,
    labels: np.ndarray,
    ntok: np.ndarray,
    bounds: np.ndarray,
    lr0: float,
    tokens_before: float,
    tokens_total: float,
    seed: int,
) -> tuple[float, int, int]:
    """Train hogwild, thread t on lines [bounds[t], bounds[t+1]); returns (loss sum, examples,
    tokens). `wi` and `wo` (float32, C order) are updated in place.

    `tokens_before` is how many tokens all epochs processed before this call and `tokens_total`
    the number planned for the whole job (epochs * tokens per epoch): the learning-rate schedule.
    """
    for name, w in (("wi", wi), ("wo", wo)):
        if w.dtype != np.float32 or not w.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-ordered float32 matrix (it is updated in place)")
    wi, wo, dim = _weights(wi, wo)
    loss, examples, tokens = _core.train_lines(
        wi, wo, dim, _i64(line_ptr), _i32(ids), _i64(label_ptr), _i32(labels), _i32(ntok),
        _i64(bounds), float(lr0), float(tokens_before), float(tokens_total), int(seed),
    )  # fmt: skip
    return float(loss), int(examples), int(tokens)


def count_correct(
    wi: np.ndarray,
    wo: np.ndarray,
    line_ptr: np.ndarray,
    ids: np.ndarray,
    label_ptr: np.ndarray,
    labels: np.ndarray,
    threads: int = 0,
) -> tuple[int, int]:
    """(correct top-1 predictions, lines evaluated): fastText's `test` precision@1.

    Lines without ids or labels are skipped, as fastText's test does.
    """
    wi, wo, dim = _weights(_f32(wi), _f32(wo))
    correct, counted = _core.count_correct(
        wi, wo, dim, _i64(line_ptr), _i32(ids), _i64(label_ptr), _i32(labels), threads or cores()
    )
    return int(correct), int(counted)
