"""Loading a model and predicting with it: the one inference path.

evaluate, serve and api all call `load_model` and `Model.predict`, so a report describes exactly
what is served. A model is any fastText supervised `.bin` (ours or one SageMaker BlazingText
trained), found from a job name in the bucket, a `model.tar.gz`, a folder or the file itself.
Raw text is normalized first with the cleaning rules the model was trained with (from
`preprocessing.json`, else the defaults). Prediction is fastText's `predict`: run by our compiled
core (`sentiment.engine._core.Predictor`, over the .bin mapped read-only, so server processes
share the weights) for the models it covers (softmax loss, no character n-grams: what
BlazingText's supervised mode and our trainer produce), else by the fastText library itself.
Tests hold the two to the same labels and probabilities.

Predictions are calibrated by default: a `calibration.json` beside `model.bin` (a training job
writes it into model.tar.gz) rescales the probabilities so they can be believed
(`sentiment.calibration`); `raw_scores=True` gives the model's own. A model without the file is
uncalibrated (`Model.calibration is None`). The calibrations training jobs fit read the model's
exact log-probabilities ("log" inputs): every calibrated score is computed from those, given by
a second core predictor over the same weights (`Model.log_proba`), where raw scores stay
fastText's p + 1e-5 (BlazingText's answers); older calibrations read p + 1e-5 as they were
fitted on. `Model.answers` gives the four answers (positive, negative, neutral, mixed) of
`sentiment.answers`.
"""

from __future__ import annotations

import functools
import io
import json
import os
import tarfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from sentiment import _sentences, layout
from sentiment import answers as answering
from sentiment.calibration import Calibration, count_words, log_of, words_of
from sentiment.errors import InputNotFound, JobFailed, ModelError, SentimentError
from sentiment.files import atomic_directory, atomic_path, sha256_file
from sentiment.labels import LabelMap, strip_prefix
from sentiment.records import read_job
from sentiment.storage import Bucket, fetch, is_remote
from sentiment.text import UNRECORDED_CLEANING, Cleaning, normalize_many


@dataclass(frozen=True)
class Prediction:
    """Top-k labels (with the `__label__` prefix) and their probabilities, most likely first."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]

    def to_sagemaker(self) -> dict[str, list[Any]]:
        return {"label": list(self.labels), "prob": list(self.probs)}


@dataclass(frozen=True)
class Preprocessing:
    """How the model's training text was made; serving applies the same."""

    # No preprocessing.json: the rules of before the token rules (sentiment.text).
    cleaning: Cleaning = UNRECORDED_CLEANING
    policy: str | None = None
    source: str = "default"  # "sidecar" when read from preprocessing.json
    # How review rows became training text (include_title, title_weight, ...), for evaluating
    # on raw review CSVs the way prepare made the test split.
    rows: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"cleaning": self.cleaning.to_dict(), "policy": self.policy, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            Cleaning.from_dict(data.get("cleaning", {})),
            data.get("policy"),
            "sidecar",
            dict(data.get("rows") or {}),
        )


@dataclass
class Model:
    """A loaded fastText supervised model."""

    path: Path
    name: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    sha256: str
    args: dict[str, Any] = field(default_factory=dict)
    _ft: Any = field(default=None, repr=False)  # the fastText library's model (fallback)
    _native: Any = field(default=None, repr=False)  # _core.Predictor, when it covers the model
    # The same weights reporting exact log-probabilities (`log_proba`): built at load for a
    # calibration reading them, else on first use. Its own Predictor, not a flag of `_native`'s:
    # predictions run in threads (its word table: 1.6 MB for `make run`'s 60k words).
    _native_log: Any = field(default=None, repr=False)
    _bin: Any = field(default=None, repr=False)  # the mapped .bin `_native` reads
    # Fitted on the training job's validation split (calibration.json); None = uncalibrated.
    calibration: Calibration | None = None
    # How the answers read labels that are not ours (`__label__1`); see `answer_labels`.
    label_map: LabelMap = field(default_factory=LabelMap)

    @functools.cached_property
    def classes(self) -> tuple[str, ...]:
        """Label names without the `__label__` prefix, in the model's order (read on every
        served request: made once)."""
        return tuple(strip_prefix(label) for label in self.labels)

    @functools.cached_property
    def answer_labels(self) -> tuple[str, ...]:
        """The names the four answers read for `classes` (the same unless `label_map`
        renames them, or infers Zhang's layouts); predictions keep the model's own."""
        return self.label_map.names(self.classes)[0]

    def prepare_texts(self, texts: Sequence[str], *, raw: bool = False) -> list[str]:
        """What the model reads for each text: normalized, or (raw) only made one line."""
        if raw:
            return [_one_line(t) for t in texts]
        return normalize_many(texts, self.preprocessing.cleaning)

    def top(
        self,
        texts: Sequence[str],
        k: int = 1,
        *,
        raw: bool = False,
        raw_scores: bool = False,
    ) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
        """fastText's predict for each text: (labels, probabilities), k best first.

        The probabilities are calibrated when the model has a calibration, unless `raw_scores`;
        raw ones are clipped to [0, 1] (fastText reports p + 1e-5: a sure one reads 1.00001).
        `predict` wraps these in `Prediction`s; the endpoint encodes them as they are."""
        calibration = None if raw_scores else self.calibration
        if calibration is not None:
            return self._calibrated_top(texts, k, raw, calibration)
        native = self._native
        if native is None:
            labels, probs = self._ft.predict(self.prepare_texts(texts, raw=raw), k=k)
            return [
                (tuple(ls), tuple(min(float(p), 1.0) for p in ps))
                for ls, ps in zip(labels, probs, strict=True)
            ]
        names = self.labels
        if len(texts) == 1 and not raw:
            # A served request: normalized and predicted in one call, no Python object made
            # in between (None: the text needs the Python path of the normalization, below).
            found = native.top_text(texts[0], k)
            if found is not None:
                return [(tuple([names[i] for i in found[0]]), found[1])]
        out = []
        for text in self.prepare_texts(texts, raw=raw):
            ids, probs = native.top(text.encode("utf-8", "surrogatepass"), k)
            out.append((tuple([names[i] for i in ids]), probs))
        return out

    def _calibrated_top(
        self, texts: Sequence[str], k: int, raw: bool, calibration: Calibration
    ) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
        names = self.labels
        k = min(k, len(names))
        if len(texts) == 1 and not raw and self._native is not None:
            # The served one-text request in plain Python: ~1 us for 2-3 labels, where numpy's
            # calls would cost several.
            found = self._scoring_core(calibration).top_text(texts[0], len(names))
            if found is not None:
                return [self._calibrated_top_one(texts[0], found, k, calibration)]
        calibrated = calibration.apply(
            self._calibration_inputs(texts, raw, calibration), _words(calibration, texts, raw)
        )
        return self._ranked(calibrated, k)

    def _calibrated_top_one(
        self,
        text: str,
        found: tuple[tuple[int, ...], tuple[float, ...]],
        k: int,
        calibration: Calibration,
    ) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """The k best calibrated labels of one raw text from `top_text(text, every label)` of
        the core `_scoring_core(calibration)`, and theirs."""
        names = self.labels
        ids = found[0]
        words = words_of(text) if calibration.length else None
        probs = calibration.apply_one(ids, found[1], words)
        if k == 1:
            j = probs.index(max(probs))
            return ((names[ids[j]],), (probs[j],))
        order = sorted(range(len(ids)), key=probs.__getitem__, reverse=True)[:k]
        return (tuple([names[ids[j]] for j in order]), tuple([probs[j] for j in order]))

    def _ranked(
        self, calibrated: np.ndarray, k: int
    ) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
        """The k best labels of each row of calibrated probabilities, and theirs."""
        names = self.labels
        ranked = np.argsort(-calibrated, axis=1, kind="stable")[:, : min(k, len(names))]
        best = np.take_along_axis(calibrated, ranked, axis=1).tolist()
        return [
            (tuple([names[i] for i in ids]), tuple(ps))
            for ids, ps in zip(ranked.tolist(), best, strict=True)
        ]

    def predict(
        self, texts: Sequence[str], k: int = 1, *, raw: bool = False, raw_scores: bool = False
    ) -> list[Prediction]:
        """Top-k predictions for each text, in order (see `top`)."""
        if not texts:
            return []
        return [Prediction(ls, ps) for ls, ps in self.top(texts, k, raw=raw, raw_scores=raw_scores)]

    def predict_proba(
        self, texts: Sequence[str], *, raw: bool = False, raw_scores: bool = False
    ) -> np.ndarray:
        """Probabilities of every label (columns in `self.labels` order), one row per text;
        calibrated (rows sum to 1) unless `raw_scores` or the model has no calibration."""
        calibration = self.calibration
        if raw_scores or calibration is None or not len(texts):
            return self._raw_proba(texts, raw)
        return calibration.apply(
            self._calibration_inputs(texts, raw, calibration), _words(calibration, texts, raw)
        )

    def log_proba(self, texts: Sequence[str], *, raw: bool = False) -> np.ndarray:
        """The model's exact log-probabilities of every label (columns in `self.labels` order),
        one row per text: what calibrations with "log" inputs read (fastText's scores are
        p + 1e-5, the same for every text the model is sure of). A row of zeros for a text
        that gives the model nothing to read (fastText predicts nothing)."""
        if self._native is None:
            # The fastText library (models the core does not cover) reports p + 1e-5 alone: its
            # log, as calibrations read it before "log" inputs.
            return log_of(self._raw_proba(texts, raw))
        return self._core_rows(self._log_core(), texts, raw)

    def _log_core(self) -> Any:
        """The core predictor of exact log-probabilities (needs `_native`)."""
        core = self._native_log
        if core is None:
            from sentiment.engine.predictor import build_predictor

            core = build_predictor(self._bin, log_probs=True)
            self._set_normalizer(core)
            self._native_log = core
        return core

    def _set_normalizer(self, core: Any) -> None:
        from sentiment.text import kernel_options
        from sentiment.text_kernel import normalizer, tables

        core.set_normalizer(normalizer(), *tables(), kernel_options(self.preprocessing.cleaning))
        core.set_splitter(_sentences.splitter())

    def _scoring_core(self, calibration: Calibration | None) -> Any:
        """The core predictor whose scores `calibration` reads (None: the raw scores)."""
        if calibration is None or calibration.inputs != "log":
            return self._native
        return self._log_core()  # built at load for such a calibration

    def _calibration_inputs(
        self, texts: Sequence[str], raw: bool, calibration: Calibration
    ) -> np.ndarray:
        """What `calibration.apply` reads for the texts: log-probabilities or probabilities."""
        if calibration.inputs == "log":
            return self.log_proba(texts, raw=raw)
        return self._raw_proba(texts, raw)

    def _raw_proba(self, texts: Sequence[str], raw: bool) -> np.ndarray:
        """fastText's probabilities (p + 1e-5, clipped to 1) of every label."""
        if self._native is not None:
            return self._core_rows(self._native, texts, raw)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        if not texts:
            return out
        index = {label: i for i, label in enumerate(self.labels)}
        for row, (ls, ps) in enumerate(self.top(texts, len(self.labels), raw=raw, raw_scores=True)):
            for label, p in zip(ls, ps, strict=True):
                out[row, index[label]] = p
        return out

    def _core_rows(self, native: Any, texts: Sequence[str], raw: bool) -> np.ndarray:
        """The scores of every label that the core predictor `native` reports, one row a text."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        if not texts:
            return out
        k = len(self.labels)
        todo = range(len(texts))
        if not raw:
            # Normalized and predicted in one C call for the whole batch, no Python object
            # in between (25 reviews and their 69 sentences: ~2 us a string less than the
            # loop below); it leaves the texts that need the Python path of the
            # normalization to that loop.
            todo = native.proba_texts(list(texts), out)
            if not todo:
                return out
        # The core's label ids and probabilities, gathered flat and put in place in one
        # numpy step: `top`'s label names per text cost as much again as the prediction
        # (`sentiment predict` on short reviews: 41k -> 70k texts/s, one process).
        rows: list[int] = []
        ids: list[int] = []
        probs: list[float] = []
        prepared = self.prepare_texts([texts[i] for i in todo], raw=raw)
        for row, text in zip(todo, prepared, strict=True):
            found, ps = native.top(text.encode("utf-8", "surrogatepass"), k)
            rows += [row] * len(found)
            ids += found
            probs += ps
        out[rows, ids] = probs
        return out

    def answer_scores(
        self,
        texts: Sequence[str],
        *,
        sources: Sequence[str] | None = None,
        raw: bool = False,
        raw_scores: bool = False,
    ) -> np.ndarray:
        """(n, 4) scores in `answers.SENTIMENTS` order for the texts (see `sentiment.answers`):
        the texts and their sentences (of `sources[i]` when given, e.g. a review's title and
        body on lines of their own) scored, calibrated unless `raw_scores`.
        `raw`: the texts are normalized already (a prepared file's lines)."""
        return self.scored(texts, sources=sources, raw=raw, raw_scores=raw_scores)[1]

    def scored(
        self,
        texts: Sequence[str],
        *,
        sources: Sequence[str] | None = None,
        raw: bool = False,
        raw_scores: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities of every label for each text, its (n, 4) answer scores): see
        `answer_scores`. The texts are scored first, then only the sentences that can change
        their scores (`answers.needs_sentences`): 39% of the short review bodies of
        benchmarks/predict are too polar for theirs to matter (the binary benchmark model)."""
        if len(texts) == 1 and not raw and self._native is not None:
            one = self._scored_one(
                texts[0], texts[0] if sources is None else sources[0], raw_scores
            )
            if one is not None:
                return one
        whole = self.predict_proba(texts, raw=raw, raw_scores=raw_scores)
        return whole, self._answered(texts, sources, whole, raw, raw_scores)[0]

    def _answered(
        self,
        texts: Sequence[str],
        sources: Sequence[str] | None,
        whole: np.ndarray,
        raw: bool,
        raw_scores: bool,
    ) -> tuple[np.ndarray, list[int] | None]:
        """The answer scores of texts whose probabilities are `whole` (see `scored`) and, when
        the core made them with the scores, the answers (else None)."""

        def score(strings: list[str]) -> np.ndarray:
            return self.predict_proba(strings, raw=raw, raw_scores=raw_scores)

        native = self._native
        if native is not None and not raw and (raw_scores or self.calibration is None):
            # The core's own probabilities: the rule and the sentences in one C pass.
            return answering.answered_by(native, texts, self.answer_labels, whole, score, sources)
        return answering.scores_of(texts, self.answer_labels, whole, score, sources), None

    def top_and_scores(
        self, texts: Sequence[str], k: int = 1, *, raw: bool = False, raw_scores: bool = False
    ) -> tuple[list[tuple[tuple[str, ...], tuple[float, ...]]], np.ndarray]:
        """`top(texts, k)` and `answer_scores(texts)` at once, each text predicted once (the
        endpoint asked for the four answers; 25 reviews: one pass over them less, ~100 us)."""
        tops, scores, _ = self._top_and_answered(texts, k, raw, raw_scores)
        return tops, scores

    def top_and_answers(
        self, texts: Sequence[str], k: int = 1, *, raw: bool = False, raw_scores: bool = False
    ) -> tuple[list[tuple[tuple[str, ...], tuple[float, ...]]], np.ndarray, list[int]]:
        """`top_and_scores` and the answers (`answers.decided` of the scores, with this
        model's weights): what the endpoint sends when asked for the four answers."""
        tops, scores, decided = self._top_and_answered(texts, k, raw, raw_scores)
        if decided is None:
            decided = answering.decided(scores, answering.weights_for(self.answer_labels))
        return tops, scores, decided

    def _top_and_answered(
        self, texts: Sequence[str], k: int, raw: bool, raw_scores: bool
    ) -> tuple[list[tuple[tuple[str, ...], tuple[float, ...]]], np.ndarray, list[int] | None]:
        native = self._native
        if len(texts) == 1 and native is not None and not raw:
            one = self._top_and_scored_one(texts[0], k, raw_scores)
            if one is not None:
                return *one, None
        if len(texts) < 2 or native is None or raw:
            return (
                self.top(texts, k, raw=raw, raw_scores=raw_scores),
                self.answer_scores(texts, raw=raw, raw_scores=raw_scores),
                None,
            )
        if not raw_scores and self.calibration is not None:
            # The batch of `top` ranks these same calibrated probabilities (`_calibrated_top`).
            whole = self.predict_proba(texts)
            return self._ranked(whole, k), *self._answered(texts, None, whole, False, False)
        whole = np.zeros((len(texts), len(self.labels)), dtype=np.float64)
        found = native.top_proba_texts(list(texts), whole, k)
        names = self.labels
        tops = [None if f is None else (tuple([names[i] for i in f[0]]), f[1]) for f in found]
        left = [i for i, f in enumerate(found) if f is None]
        if left:  # the Python path of the normalization, for these texts
            some = [texts[i] for i in left]
            whole[left] = self._raw_proba(some, False)
            for i, top in zip(left, self.top(some, k, raw_scores=True), strict=True):
                tops[i] = top
        return (
            cast(list[tuple[tuple[str, ...], tuple[float, ...]]], tops),
            *self._answered(texts, None, whole, False, raw_scores),
        )

    def _top_and_scored_one(
        self, text: str, k: int, raw_scores: bool
    ) -> tuple[list[tuple[tuple[str, ...], tuple[float, ...]]], np.ndarray] | None:
        """`top_and_scores` for one raw text (the API's one-review request), the text
        normalized and predicted once for both where `top` makes the same call (every label:
        calibrated, or k at least the labels, as the API asks), else twice. None when the text
        needs the Python path of the normalization."""
        names = self.labels
        nl = len(names)
        k = min(k, nl)
        calibration = None if raw_scores else self.calibration
        if calibration is None and k < nl:
            top = self.top([text], k, raw_scores=raw_scores)
            found = None
        else:
            found = self._scoring_core(calibration).top_text(text, nl)
            if found is None:
                return None
            if calibration is not None:
                top = [self._calibrated_top_one(text, found, k, calibration)]
            else:  # `top`'s own call: top_text(text, k) with k = every label
                top = [(tuple([names[i] for i in found[0]]), found[1])]
        one = self._scored_one(text, text, raw_scores, found)
        if one is None:
            return None
        return top, one[1]

    def _scored_one(
        self,
        text: str,
        source: str,
        raw_scores: bool,
        found: tuple[tuple[int, ...], tuple[float, ...]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """`scored` for one raw text (a served request), numpy only for the calibration (its
        log and exp), the same floats: ~10 us where the batch path's numpy calls cost ~60.
        `found`: `top_text(text, every label)` of the core `_scoring_core` gives for these
        scores, when made already. None when the text needs the Python path of the
        normalization."""
        nl = len(self.labels)
        calibration = None if raw_scores else self.calibration
        if found is None:
            found = self._scoring_core(calibration).top_text(text, nl)
            if found is None:
                return None
        row = [0.0] * nl
        for i, p in zip(*found, strict=True):
            row[i] = p
        if calibration is None:  # the core's own probabilities: it makes the scores itself
            whole = np.array([row])
            return whole, self._answered([text], [source], whole, False, raw_scores)[0]
        row = calibration.apply(np.array([row]), _words(calibration, [text], False))[0].tolist()
        parts: list[list[float]] = []
        if answering.needs_sentences_one(self.answer_labels, row):
            pieces = answering.sentences(source)
            if len(pieces) > 1:
                parts = self.predict_proba(pieces, raw_scores=raw_scores).tolist()
        scores = answering.combine_one(self.answer_labels, row, parts)
        return np.array([row]), np.array([scores])

    def answers(self, texts: Sequence[str], *, raw_scores: bool = False) -> list[answering.Answer]:
        """The answer (positive, negative, neutral or mixed, with all four scores) per text."""
        scores = self.answer_scores(texts, raw_scores=raw_scores)
        return answering.to_answers(scores, answering.weights_for(self.answer_labels))

    @property
    def derivation(self) -> str:
        """How this model's four answers are derived, and whether its scores are calibrated."""
        how = answering.derivation(self.answer_labels, self.classes)
        note = self.label_map.names(self.classes)[1]
        if note:
            how = f"{how}; {note}"
        if self.calibration is None:
            return f"{how}; uncalibrated scores (the model has no {layout.CALIBRATION})"
        return f"{how}; scores calibrated ({self.calibration.method} scaling, T={self.calibration.temperature:.3g})"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "labels": list(self.classes),
            "label_map": str(self.label_map) or None,
            "preprocessing": self.preprocessing.to_dict() | {"source": self.preprocessing.source},
            "args": self.args,
            "calibration": self.calibration.to_dict() if self.calibration else None,
        }


def _words(calibration: Calibration, texts: Sequence[str], normalized: bool) -> np.ndarray | None:
    """Each text's word count when the calibration tempers short texts, else None."""
    return count_words(texts, normalized=normalized) if calibration.length else None


def load_model(
    ref: str | Path,
    *,
    bucket: Bucket | None = None,
    cache_dir: Path | None = None,
    label_map: LabelMap | None = None,
) -> Model:
    """Load the model that `ref` names: a `.bin`, a `model.tar.gz`, a folder, or a job name;
    its answers read its labels through `label_map` (the setting; see `Model.answer_labels`)."""
    path = resolve_model_bin(ref, bucket=bucket, cache_dir=cache_dir)
    return load_model_bin(path, name=_model_name(ref), label_map=label_map)


def resolve_model_bin(
    ref: str | Path, *, bucket: Bucket | None = None, cache_dir: Path | None = None
) -> Path:
    """The fastText .bin that `ref` names (an archive is unpacked into the cache)."""
    try:
        model_dir = resolve_model_dir(ref, bucket=bucket, cache_dir=cache_dir)
    except (OSError, ValueError) as err:  # a name the system refuses (too long, a NUL byte)
        raise InputNotFound(
            f"No model found at {str(ref)[:200]!r}: {getattr(err, 'strerror', None) or err}."
        ) from None
    return model_dir / layout.MODEL_BIN if _is_dir(model_dir) else model_dir


def load_model_bin(
    path: Path, *, name: str | None = None, label_map: LabelMap | None = None
) -> Model:
    """Load a fastText `.bin`; its `preprocessing.json` sidecar, if beside it, is read too."""
    if not _is_file(path):
        raise InputNotFound(f"No model file at {path}.", hint="Train one with `sentiment train`.")
    try:
        return _load_model_bin(path, name, label_map or LabelMap())
    except SentimentError:
        raise
    except Exception as err:  # any failure to load is the model's (MemoryError,
        # the fastText library's ValueError/RuntimeError on a model it cannot predict with, ...)
        raise ModelError(f"{path} could not be loaded as a model: {err!r}.") from None


def _load_model_bin(path: Path, name: str | None, label_map: LabelMap) -> Model:
    ft, bin_model, labels, args = _load_predictor(path)
    sidecar = path.parent / layout.PREPROCESSING
    pre = Preprocessing()
    if sidecar.is_file():
        try:
            pre = Preprocessing.from_dict(json.loads(sidecar.read_text()))
        except (ValueError, TypeError) as err:
            raise ModelError(f"{sidecar} is not valid preprocessing JSON: {err}.") from None
    calibration = _read_calibration(path.parent / layout.CALIBRATION, labels)
    model = Model(
        path=path,
        name=name or path.parent.name or path.stem,
        labels=labels,
        preprocessing=pre,
        sha256=sha256_file(path),
        args=args,
        _ft=ft,
        _bin=bin_model,
        calibration=calibration,
        label_map=label_map,
    )
    if bin_model is not None:
        from sentiment.engine.predictor import build_predictor

        model._native = build_predictor(bin_model)
        model._set_normalizer(model._native)
        if calibration is not None and calibration.inputs == "log":
            model._log_core()  # now, not in a served request's thread
    # Load the compiled normalization now (single and batch entries), not on the first request:
    # a served worker would otherwise answer its first requests ~0.3 s late (p99 of a benchmark
    # run showed 400 ms).
    model.predict(["warm up"])
    model.predict(["warm up", "12 :) http://x"])
    return model


def _read_calibration(path: Path, labels: Sequence[str]) -> Calibration | None:
    """The calibration beside a model.bin, in the model's label order; None when absent."""
    if not path.is_file():
        return None
    try:
        found = Calibration.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, AttributeError) as err:
        raise ModelError(f"{path} is not valid calibration JSON: {err}.") from None
    return found.reordered([strip_prefix(label) for label in labels])


def resolve_model_dir(ref: str | Path, *, bucket: Bucket | None, cache_dir: Path | None) -> Path:
    """A folder holding model.bin (or the .bin itself) for any accepted model reference."""
    if is_remote(ref):
        return _unpack(_fetch_remote_archive(str(ref), cache_dir), cache_dir)
    path = Path(ref).expanduser()
    if _is_file(path):
        if path.name.endswith((".tar.gz", ".tgz")):
            return _unpack(path, cache_dir)
        return path
    if _is_dir(path):
        for candidate in (
            path / layout.MODEL_BIN,
            path / layout.MODEL_ARCHIVE,
            path / "output" / layout.MODEL_ARCHIVE,
        ):
            if candidate.is_file():
                return resolve_model_dir(candidate, bucket=bucket, cache_dir=cache_dir)
        raise InputNotFound(
            f"{path} holds no {layout.MODEL_BIN} or {layout.MODEL_ARCHIVE}.",
            hint="Point --model at a training job's output or a fastText .bin file.",
        )
    if bucket is not None and _is_job_name(str(ref)):
        # The record as `sentiment jobs describe` reads it: a job whose process is gone is
        # Failed, not InProgress.
        record_key = layout.job_record_key(str(ref))
        archive_key = layout.model_archive_key(str(ref))
        if bucket.exists(record_key):
            record = read_job(bucket, str(ref))
            status = record.get("status")
            if status != "Completed":
                reason = record.get("failure_reason") or ""
                raise JobFailed(
                    f"Training job {ref!r} is {status}, so it has no model. {reason}".strip()
                )
        if bucket.exists(archive_key):
            if is_remote(bucket.uri):
                return _unpack(_fetch_remote_archive(bucket.url(archive_key), cache_dir), cache_dir)
            return _unpack(bucket.local_path(archive_key), cache_dir)
    raise InputNotFound(
        f"No model found at {ref!r} (not a file, a folder, or a training job in {bucket.uri if bucket else 'the bucket'}).",
        hint="Train one with `sentiment train`, or list jobs with `sentiment jobs list`.",
    )


def _fetch_remote_archive(uri: str, cache_dir: Path | None) -> Path:
    """A local copy of the model.tar.gz at `uri` (s3://.../model.tar.gz, or a job's folder)."""
    from sentiment.config import Settings
    from sentiment.storage import open_bucket

    cache = cache_dir or Settings().cache_dir
    if not uri.endswith((".tar.gz", ".tgz")):
        folder = open_bucket(uri)
        for key in (layout.MODEL_ARCHIVE, f"output/{layout.MODEL_ARCHIVE}"):
            if folder.exists(key):
                return fetch(folder.url(key), cache)
        raise InputNotFound(
            f"{uri} holds no {layout.MODEL_ARCHIVE} (nor output/{layout.MODEL_ARCHIVE}).",
            hint="Point --model at s3://BUCKET/.../model.tar.gz.",
        )
    return fetch(uri, cache)


def _unpack(archive: Path, cache_dir: Path | None) -> Path:
    digest = sha256_file(archive)[:16]
    target = (cache_dir or archive.parent / ".unpacked") / "models" / digest
    if (target / layout.MODEL_BIN).is_file():
        return target
    try:
        with atomic_directory(target) as tmp, tarfile.open(archive, "r:gz") as tar:
            members = [
                m for m in tar.getmembers() if m.isfile() and not m.name.startswith(("/", ".."))
            ]
            tar.extractall(tmp, members=members, filter="data")
            found = _find_bin(tmp)
            if found is None:
                raise ModelError(
                    f"{archive} holds no {layout.MODEL_BIN}.",
                    hint="SageMaker BlazingText archives have model.bin at their root.",
                )
            if found.parent != tmp:
                for item in found.parent.iterdir():
                    os.replace(item, tmp / item.name)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ModelError(f"{archive} is not a readable model.tar.gz: {err}.") from None
    return target


def write_model_archive(
    target: Path, model_bin: Path, sidecars: Mapping[str, bytes]
) -> tuple[str, int]:
    """model.tar.gz at `target` with `model_bin` at its root as `model.bin` (as SageMaker
    BlazingText writes it; its bytes unchanged) and each sidecar (preprocessing.json,
    calibration.json) beside it, first (`read_sidecars` reads them without going through
    model.bin); written beside its final name and renamed when complete. Returns the archive's
    (sha256, bytes). A training job and `sentiment calibrate` write their archives here."""
    with atomic_path(target) as partial:
        with tarfile.open(partial, "w:gz") as tar:
            for name, data in sidecars.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = int(time.time())
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
            tar.add(model_bin, arcname=layout.MODEL_BIN)
        return sha256_file(partial), partial.stat().st_size


# The sidecars `read_sidecars` reads, and the most bytes it takes of one.
SIDECARS = (layout.PREPROCESSING, layout.CALIBRATION)
SIDECAR_MAX_BYTES = 1 << 20


def read_sidecars(uri: str) -> dict[str, bytes]:
    """The sidecars (preprocessing.json, calibration.json) a model.tar.gz at `uri` (a path or
    an s3:// URI) holds, by name, read as a stream that ends once both are read or
    model.bin is reached after them (an archive `write_model_archive` wrote holds them first:
    the model's matrices, tens of MB, are not read; one SageMaker trained holds neither).
    ModelError when `uri` is not a readable model.tar.gz."""
    from sentiment.storage import split_file_uri

    found: dict[str, bytes] = {}
    try:
        bucket, key = split_file_uri(uri)
        with bucket.open_read(key) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name == layout.MODEL_BIN and found:
                    break  # ours: the sidecars come first
                if name not in SIDECARS or not member.isfile():
                    continue
                if member.size > SIDECAR_MAX_BYTES:
                    raise ModelError(f"{uri}: {name} has {member.size:,} bytes; not a sidecar.")
                data = tar.extractfile(member)
                found[name] = data.read() if data is not None else b""
                if len(found) == len(SIDECARS):
                    break
    except SentimentError:
        raise
    except (OSError, tarfile.TarError, EOFError) as err:
        raise ModelError(
            f"Cannot read the model archive {uri}: {err}.",
            hint="Give the model.tar.gz the endpoint hosts (a path or s3:// URI).",
        ) from None
    return found


def _is_file(path: Path) -> bool:
    """Path.is_file(), False for a name the system cannot look up (too long, a NUL byte)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _find_bin(root: Path) -> Path | None:
    direct = root / layout.MODEL_BIN
    if direct.is_file():
        return direct
    return next(iter(sorted(root.rglob(layout.MODEL_BIN))), None)


def _load_predictor(path: Path) -> tuple[Any, Any, tuple[str, ...], dict[str, Any]]:
    """(fastText model or None, the mapped BinModel our Predictor covers or None, labels, args)
    for a .bin file."""
    from sentiment.engine.fasttext_bin import QuantizedModel, read_bin
    from sentiment.engine.predictor import covers

    try:
        bin_model = read_bin(path, mapped=True)
    except QuantizedModel:
        # A whole quantized model (checked to its last byte): the fastText library reads those.
        # Any other file our reader refuses is refused here too: truncated or tampered with, the
        # fastText library would allocate by its garbage counts (gigabytes, for ~20 s and more)
        # before failing, or load it and fail on the first prediction.
        ft = _load_fasttext(path)
        return ft, None, tuple(ft.get_labels()), _args(ft)
    nwords = bin_model.nwords
    labels = tuple(w.decode("utf-8", "replace") for w in bin_model.words[nwords:])
    args = {
        "model": "supervised",
        "loss": bin_model.loss,
        "dim": bin_model.dim,
        "word_ngrams": bin_model.word_ngrams,
        "buckets": bin_model.buckets,
        "min_count": bin_model.min_count,
        "minn": bin_model.minn,
        "maxn": bin_model.maxn,
    }
    if not covers(bin_model):
        ft = _load_fasttext(path)
        return ft, None, tuple(ft.get_labels()), _args(ft)
    return None, bin_model, labels, args


def _load_fasttext(path: Path) -> Any:
    import fasttext

    # No silencing needed: fasttext-community's load_model writes nothing (measured: 0 bytes on
    # fd 2); contextlib.redirect_stderr would not reach its C++ core anyway.
    try:
        ft = fasttext.load_model(str(path))
    except (ValueError, RuntimeError, MemoryError) as err:
        raise ModelError(f"{path} is not a fastText model file: {err}.") from None
    if _args(ft).get("model") != "supervised":
        raise ModelError(
            f"{path} is a fastText word-vector model, not a text classifier.",
            hint="Use a model trained in supervised mode.",
        )
    return ft


def _args(ft: Any) -> dict[str, Any]:
    a = ft.f.getArgs()
    return {
        "model": str(a.model).rsplit(".", 1)[-1],
        "loss": str(a.loss).rsplit(".", 1)[-1],
        "dim": a.dim,
        "word_ngrams": a.wordNgrams,
        "buckets": a.bucket,
        "min_count": a.minCount,
        "minn": a.minn,
        "maxn": a.maxn,
    }


def _one_line(text: str) -> str:
    return text.replace("\r", " ").replace("\n", " ")


def _is_job_name(ref: str) -> bool:
    return bool(ref) and "/" not in ref and not ref.endswith((".bin", ".gz", ".tgz"))


def _model_name(ref: str | Path) -> str:
    text = str(ref).rstrip("/")
    return Path(text).name.removesuffix(".tar.gz").removesuffix(".bin") or text
