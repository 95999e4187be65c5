"""The numeric core: fastText's supervised update and prediction, compiled by numba.

Training is hogwild SGD as in fastText: each thread takes its own contiguous share of the lines
and updates the shared matrices without locks. For one line: the hidden vector is the mean of
the input rows of its ids; the softmax over the labels is computed from the output matrix; each
output row moves by `alpha = lr * (1[target] - p)` times the hidden vector while the gradient
of the hidden vector accumulates `alpha * row` (read before the row moves); the gradient,
divided by the number of ids, is added to every input row of the line. The learning rate decays
linearly with the tokens processed over all planned epochs.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange


@numba.njit(cache=True, fastmath=True, nogil=True)
def _hidden(wi: np.ndarray, ids: np.ndarray, a: int, b: int, hidden: np.ndarray) -> None:
    dim = hidden.shape[0]
    for d in range(dim):
        hidden[d] = 0.0
    for j in range(a, b):
        row = ids[j]
        for d in range(dim):
            hidden[d] += wi[row, d]
    inv = np.float32(1.0) / np.float32(b - a)
    for d in range(dim):
        hidden[d] *= inv


@numba.njit(cache=True, fastmath=True, nogil=True)
def _softmax(wo: np.ndarray, hidden: np.ndarray, out: np.ndarray) -> None:
    nl, dim = wo.shape
    top = -np.inf
    for i in range(nl):
        s = np.float32(0.0)
        for d in range(dim):
            s += wo[i, d] * hidden[d]
        out[i] = s
        if s > top:
            top = s  # type: ignore[assignment]
    z = np.float32(0.0)
    for i in range(nl):
        out[i] = np.exp(out[i] - top)
        z += out[i]
    for i in range(nl):
        out[i] /= z


@numba.njit(cache=True, fastmath=True, parallel=True, nogil=True)
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
    """Train hogwild, worker t on lines [bounds[t], bounds[t+1]); returns (loss sum, examples,
    tokens).

    `tokens_before` is how many tokens all epochs processed before this call and `tokens_total`
    the number planned for the whole job (epochs * tokens per epoch): the learning-rate schedule.
    """
    nl, dim = wo.shape
    threads = bounds.shape[0] - 1
    losses = np.zeros(threads, np.float64)
    examples = np.zeros(threads, np.int64)
    seen = np.zeros(threads, np.int64)
    for t in prange(threads):
        start = bounds[t]
        end = bounds[t + 1]
        hidden = np.empty(dim, np.float32)
        grad = np.empty(dim, np.float32)
        out = np.empty(nl, np.float32)
        state = np.uint64(seed * 1000003 + t * 7919 + 1)
        local = 0
        for li in range(start, end):
            local += ntok[li]
            a = line_ptr[li]
            b = line_ptr[li + 1]
            la = label_ptr[li]
            lb = label_ptr[li + 1]
            if b == a or lb == la:
                continue
            progress = (tokens_before + local * threads) / tokens_total
            if progress > 1.0:
                progress = 1.0
            lr = np.float32(lr0 * (1.0 - progress))
            if lb - la == 1:
                target = labels[la]
            else:  # several labels: one at random per example, as fastText's softmax
                state ^= state << np.uint64(13)
                state ^= state >> np.uint64(7)
                state ^= state << np.uint64(17)
                target = labels[la + np.int64(state % np.uint64(lb - la))]
            _hidden(wi, ids, a, b, hidden)
            _softmax(wo, hidden, out)
            for d in range(dim):
                grad[d] = 0.0
            for i in range(nl):
                label = np.float32(1.0) if i == target else np.float32(0.0)
                alpha = lr * (label - out[i])
                for d in range(dim):
                    grad[d] += alpha * wo[i, d]
                    wo[i, d] += alpha * hidden[d]
            losses[t] -= np.log(out[target] + 1e-5)
            examples[t] += 1
            scale = np.float32(1.0) / np.float32(b - a)
            for d in range(dim):
                grad[d] *= scale
            for j in range(a, b):
                row = ids[j]
                for d in range(dim):
                    wi[row, d] += grad[d]
        seen[t] = local
    return losses.sum(), examples.sum(), seen.sum()


@numba.njit(cache=True, fastmath=True, parallel=True, nogil=True)
def predict_probs(
    wi: np.ndarray, wo: np.ndarray, line_ptr: np.ndarray, ids: np.ndarray
) -> np.ndarray:
    """Softmax probabilities of every label for every line (zeros for a line without ids)."""
    nl, dim = wo.shape
    n = line_ptr.shape[0] - 1
    probs = np.zeros((n, nl), np.float32)
    for li in prange(n):
        a = line_ptr[li]
        b = line_ptr[li + 1]
        if b == a:
            continue
        hidden = np.empty(dim, np.float32)
        _hidden(wi, ids, a, b, hidden)
        _softmax(wo, hidden, probs[li])
    return probs


@numba.njit(cache=True, fastmath=True, parallel=True, nogil=True)
def count_correct(
    wi: np.ndarray,
    wo: np.ndarray,
    line_ptr: np.ndarray,
    ids: np.ndarray,
    label_ptr: np.ndarray,
    labels: np.ndarray,
) -> tuple[int, int]:
    """(correct top-1 predictions, lines evaluated): fastText's `test` precision@1.

    Lines without ids or labels are skipped, as fastText's test does.
    """
    nl, dim = wo.shape
    n = line_ptr.shape[0] - 1
    correct = np.zeros(n, np.int8)
    counted = np.zeros(n, np.int8)
    for li in prange(n):
        a = line_ptr[li]
        b = line_ptr[li + 1]
        la = label_ptr[li]
        lb = label_ptr[li + 1]
        if b == a or lb == la:
            continue
        hidden = np.empty(dim, np.float32)
        out = np.empty(nl, np.float32)
        _hidden(wi, ids, a, b, hidden)
        _softmax(wo, hidden, out)
        best = 0
        for i in range(1, nl):
            if out[i] > out[best]:
                best = i
        counted[li] = 1
        for j in range(la, lb):
            if labels[j] == best:
                correct[li] = 1
    return int(correct.sum()), int(counted.sum())
