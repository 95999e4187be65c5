"""`sentiment predict`: one text a line in, one JSON answer a line out, as fastText's
`predict-prob` (or the endpoint's jsonlines, without a server).

Each line of the input (a file, or standard input) is a raw text; each line out is its answer:

    {"sentiment": "positive", "scores": {"positive": 0.93, "negative": 0.01, "neutral": 0.05, "mixed": 0.01}}

(`sentiment.answers`: the four sentiments from the model's calibrated probabilities of the
text and of its sentences), in input order, line N out for line N in. A line with nothing but
white space holds no words: its object says so (`"error": {"code": "no_words", ...}`) rather
than being skipped. `--k` adds the model's k most likely labels and their probabilities
(`"label"`, `"prob"`, as the endpoint's JSON has them); `--raw-scores` gives the model's own,
uncalibrated probabilities.

Lines are read and answered in batches, by worker processes (the `threads` setting; all cores
by default) that the model is forked into, with a bounded number of batches in flight: memory
stays flat on an input of any size, and answers are written as their batch is done.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO

import click
import numpy as np
import orjson

from sentiment import answers
from sentiment.commands.options import label_map_option, model_option
from sentiment.errors import InputNotFound
from sentiment.labels import LabelMap
from sentiment.model import Model

# Lines a worker answers at a time: big enough that the hand-off to a worker (pickled lines
# in, JSON bytes out) is small beside the work, small enough that answers stream out.
BATCH = 2000
# The object of a line without words (the API's per-item error has the same shape).
NO_WORDS = orjson.dumps(
    {
        "sentiment": None,
        "scores": None,
        "error": {"code": "no_words", "message": "The line holds no words."},
    }
)


@click.command()
@model_option
@click.argument("source", default="-", metavar="[FILE|-]")
@click.option(
    "--k",
    "k",
    type=click.IntRange(min=1),
    help="Also give the model's k most likely labels and their probabilities (calibrated "
    "unless --raw-scores).",
)
@click.option("--raw-scores", is_flag=True, help="The model's own probabilities, uncalibrated.")
@click.option(
    "--batch-size",
    default=BATCH,
    show_default=True,
    type=click.IntRange(min=1),
    help="Lines answered at a time (and by one worker).",
)
@label_map_option
@click.pass_context
def command(
    ctx: click.Context,
    model: str,
    source: str,
    k: int | None,
    raw_scores: bool,
    batch_size: int,
    label_map: LabelMap | None,
) -> None:
    """Answer each line of FILE (or standard input) with one JSON line: its sentiment and scores.

    Example: sentiment predict --model blazingtext-2026-11-24-10-00-00 reviews.txt > answers.jsonl
    """
    from sentiment.model import load_model
    from sentiment.storage import open_bucket

    settings = ctx.obj.settings.replace(label_map=label_map)
    loaded = load_model(
        model,
        bucket=open_bucket(settings.bucket),
        cache_dir=settings.cache_dir,
        label_map=settings.label_map,
    )
    answerer = Answerer(loaded, k, raw_scores)
    answers.derivation(loaded.answer_labels)  # a model whose labels have no sentiment fails here
    out = sys.stdout.buffer
    with _opened(source) as lines:
        interactive = lines.isatty()
        batch, workers = (1, 1) if interactive else (batch_size, settings.workers)
        try:
            for chunk in answer_lines(answerer, lines, batch, workers):
                out.write(chunk)
                out.flush()
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())


@dataclass(frozen=True)
class Answerer:
    """Turns a batch of raw input lines into their JSON lines (what a worker runs)."""

    model: Model
    k: int | None = None
    raw_scores: bool = False

    def __call__(self, lines: list[bytes]) -> bytes:
        texts = [line.decode("utf-8", "replace").rstrip("\r\n") for line in lines]
        kept = [i for i, text in enumerate(texts) if not text.isspace() and text]
        encoded = [NO_WORDS] * len(texts)
        if kept:
            for i, line in zip(kept, self._answer([texts[i] for i in kept]), strict=True):
                encoded[i] = line
        return b"\n".join(encoded) + b"\n"

    def _answer(self, texts: list[str]) -> list[bytes]:
        # The texts, then the sentences that can change their scores (see sentiment.answers).
        whole, scores = self.model.scored(texts, raw_scores=self.raw_scores)
        # The answer as Model.answers and the API give it (a plain argmax differs for a model
        # with a neutral label).
        best = answers.decide(scores, answers.weights_for(self.model.answer_labels)).tolist()
        objects = [
            {
                "sentiment": answers.SENTIMENTS[b],
                "scores": dict(zip(answers.SENTIMENTS, row, strict=True)),
            }
            for b, row in zip(best, scores.round(6).tolist(), strict=True)
        ]
        if self.k:
            order = np.argsort(-whole, axis=1, kind="stable")[:, : self.k]
            top = np.take_along_axis(whole, order, axis=1).round(6).tolist()
            names = self.model.labels
            for obj, ids, ps in zip(objects, order.tolist(), top, strict=True):
                obj["label"] = [names[j] for j in ids]
                obj["prob"] = ps
        return [orjson.dumps(obj) for obj in objects]


def answer_lines(
    answer: Answerer, lines: Iterable[bytes], batch: int, workers: int
) -> Iterator[bytes]:
    """The answers to `lines`, a batch at a time, in order. With several workers the batches
    go to forked processes, at most two per worker in flight; an input that fits in one batch
    is answered here (starting workers would cost more than it)."""
    stream = iter(lines)
    batches = iter(lambda: list(islice(stream, batch)), [])
    first = next(batches, None)
    if first is None:
        return
    if workers <= 1 or len(first) < batch or "fork" not in multiprocessing.get_all_start_methods():
        yield answer(first)
        yield from map(answer, batches)
        return
    # Forked, the workers share the parent's loaded model (its weights are a read-only map).
    context = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, context, initializer=_adopt, initargs=(answer,))
    try:
        pending: deque[Future[bytes]] = deque([pool.submit(_work, first)])
        for chunk in batches:
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
            pending.append(pool.submit(_work, chunk))
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_ANSWERER: Answerer | None = None  # a worker's, set when it starts


def _adopt(answer: Answerer) -> None:
    global _ANSWERER
    _ANSWERER = answer
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle


def _work(lines: list[bytes]) -> bytes:
    assert _ANSWERER is not None
    return _ANSWERER(lines)


@contextlib.contextmanager
def _opened(source: str) -> Iterator[IO[bytes]]:
    if source == "-":
        yield sys.stdin.buffer
        return
    path = Path(source)
    if not path.is_file():
        raise InputNotFound(
            f"No input file at {path}.",
            hint="Give a file of one text a line, or - (or nothing) for standard input.",
        )
    with open(path, "rb") as fh:
        yield fh
