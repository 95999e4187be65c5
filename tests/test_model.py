"""The one inference path: our compiled predictor answers exactly as fastText's own predict.

`sentiment.model` predicts with `sentiment.engine._core.Predictor` for the models it covers
(softmax, no character n-grams) and hands every other model to the fastText library; both
are checked here against fastText itself, on real reviews and on awkward input.
"""

from __future__ import annotations

from pathlib import Path

import fasttext
import numpy as np
import pytest

from sentiment.model import load_model
from sentiment.text import normalize

AWKWARD = [
    "",
    "   ",
    "\t\v\f tabs\tand\vvertical\fspace\r",
    "great",
    "unknownword zzzqqq xxyyzz",
    "__label__positive __label__negative great",
    "__label__nonsense awful",
    "café crème brûlée was délicieux 😀 ! ñandú straße 東京",
    "a " * 3000,
    "not bad at all , i would buy it again :)",
]


@pytest.fixture(scope="module")
def reviews(tiny_model_dir: Path) -> list[str]:
    """Normalized texts as the model reads them (the prepared training file's lines)."""
    lines = (tiny_model_dir / "train.txt").read_text().splitlines()[:2000]
    return [line.split(" ", 1)[1] if " " in line else "" for line in lines] + AWKWARD


def _fasttext_model(tmp: Path, train: Path, **kw: object) -> Path:
    model = fasttext.train_supervised(
        str(train), **{"epoch": 2, "dim": 8, "minCount": 1, "thread": 1, "verbose": 0, **kw}
    )  # type: ignore[arg-type]
    path = tmp / "model.bin"
    model.save_model(str(path))
    return path


def _compare(path: Path, texts: list[str]) -> None:
    ours = load_model(path)
    assert ours._native is not None, "the model should be served by our predictor"
    theirs = fasttext.load_model(str(path))
    k = len(ours.labels)
    got = ours.top(texts, k=k, raw=True)
    labels, probs = theirs.predict(texts, k=k)
    for text, (our_labels, our_probs), their_labels, their_probs in zip(
        texts, got, labels, probs, strict=True
    ):
        assert list(our_labels) == list(their_labels), text
        expected = np.minimum(np.asarray(their_probs, np.float64), 1.0)
        assert np.array_equal(np.asarray(our_probs, np.float64), expected), text


def test_our_predictor_gives_fasttexts_labels_and_probabilities(
    tiny_model_dir: Path, reviews: list[str]
) -> None:
    """A model fastText trained (word bigrams, 2 labels): identical, to the last bit."""
    _compare(tiny_model_dir / "model.bin", reviews)


# One-word texts this model is sure of: logit gaps of 14-91, far above log(1e5) = 11.5, so
# fastText's p + 1e-5 reads each (1, 1e-5).
SURE_WORDS = ["great", "terrible", "awful", "excellent", "ok", "fine", "waste", "perfect"]


def _log_softmax_of_fasttext(path: Path, texts: list[str]) -> np.ndarray:
    """numpy's log-softmax of the fastText library's logits (sentence vector @ output matrix)."""
    ft = fasttext.load_model(str(path))
    hidden = np.array([ft.get_sentence_vector(t) for t in texts], np.float64)
    z = hidden @ ft.get_output_matrix().astype(np.float64).T
    top = z.max(axis=1, keepdims=True)
    out: np.ndarray = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))
    return out


def test_log_probabilities_are_the_log_softmax_of_fasttexts_logits(
    tiny_model_dir: Path, reviews: list[str]
) -> None:
    """`log_proba` (the core's log_probs Predictor) on reviews and on one-word texts so sure
    that fastText's own scores of them are all alike; every core entry gives the same."""
    path = tiny_model_dir / "model.bin"
    model = load_model(path)
    assert model._native is not None
    raw = model.predict_proba(SURE_WORDS, raw_scores=True)
    assert np.allclose(np.sort(raw, axis=1), [[1e-5, 1.0]] * len(SURE_WORDS), atol=1e-6)
    words = model.prepare_texts(SURE_WORDS)
    texts = [t for t in reviews if t.strip()] + words
    got = model.log_proba(texts, raw=True)
    expected = _log_softmax_of_fasttext(path, texts)
    assert np.abs(got - expected).max() < 1e-4
    gaps = np.abs(got[-len(words) :, 0] - got[-len(words) :, 1])
    assert gaps.min() > np.log(1e5)  # what p + 1e-5 cannot tell apart
    assert np.array_equal(model.log_proba(SURE_WORDS), got[-len(words) :])  # normalized in C
    core = model._log_core()
    for text, row in zip(SURE_WORDS, got[-len(words) :], strict=True):
        ids, values = core.top_text(text, 2)
        assert list(ids) == list(np.argsort(-row)) and values == tuple(row[list(ids)])
        assert core.top_text(text, 1) == ((ids[0],), (values[0],))
    out = np.zeros((len(SURE_WORDS), 2))
    found = core.top_proba_texts(SURE_WORDS, out, 1)
    assert np.array_equal(out, got[-len(words) :])
    assert found == [core.top_text(text, 1) for text in SURE_WORDS]
    # The raw scores are still fastText's own (not computed by the log-probability core).
    assert np.array_equal(model.predict_proba(SURE_WORDS, raw_scores=True), raw)


@pytest.mark.parametrize(
    "kw",
    [
        {"wordNgrams": 1},  # no buckets at all
        {"wordNgrams": 3, "bucket": 50_000},
        {"wordNgrams": 2, "bucket": 10_000, "label": "__label__"},
    ],
    ids=["unigrams", "trigrams", "small-buckets"],
)
def test_identical_for_other_shapes_and_five_labels(
    tmp_path: Path, tiny_model_dir: Path, reviews: list[str], kw: dict[str, object]
) -> None:
    stars = ["1", "2", "3", "4", "5"]
    lines = [f"__label__{stars[i % 5]} {text}" for i, text in enumerate(reviews[:2000]) if text]
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines) + "\n")
    _compare(_fasttext_model(tmp_path, train, **kw), reviews)


def test_models_it_does_not_cover_go_to_fasttext(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Character n-grams and other losses: the fastText library predicts, and says the same."""
    train = tiny_model_dir / "train.txt"
    for name, kw in (("subwords", {"minn": 2, "maxn": 4}), ("hs", {"loss": "hs"})):
        folder = tmp_path / name
        folder.mkdir()
        path = _fasttext_model(folder, train, **kw)
        model = load_model(path)
        assert model._native is None and model._ft is not None, name
        texts = ["i loved it , great", "broke after a day , awful"]
        labels, probs = fasttext.load_model(str(path)).predict(texts, k=1)
        got = model.top(texts, k=1, raw=True)
        assert [list(g[0]) for g in got] == [list(x) for x in labels]
        assert [g[1][0] for g in got] == pytest.approx([min(1.0, float(p[0])) for p in probs])
        # The library reports p + 1e-5 alone: calibrations read its log (as before "log" inputs).
        raw = model.predict_proba(texts, raw=True, raw_scores=True)
        assert np.array_equal(model.log_proba(texts, raw=True), np.log(np.maximum(raw, 1e-7)))


def test_raw_text_is_normalized_once_either_way(tiny_model_dir: Path) -> None:
    """One text (the served request's path: UTF-8 straight from the kernel) and a batch give
    the predictions of the normalized text."""
    model = load_model(tiny_model_dir / "model.bin")
    raw = [
        "I LOVED it!!! Best purchase of 2023 :) http://x.y",
        "Broke after ONE day. &amp; :(",  # an entity: the kernel hands it to Python
        "İSTANBUL ΟΔΟΣ was great",  # lower cases the kernel leaves to Python
        "lone \udc80 surrogate, not UTF-8",
        "",
        "great value, works well. " * 400,  # longer than the one-call path's stack buffers
        "1-" * 300,  # normalization's longest growth: each "1" becomes "_num_"
    ]
    assert model._native is not None
    assert model._native.top_text(raw[1], 1) is None  # the Python path, then `top`
    one = [model.top([text], k=2)[0] for text in raw]
    assert one == model.top(raw, k=2)
    cleaning = model.preprocessing.cleaning
    assert one == model.top([normalize(t, cleaning) for t in raw], k=2, raw=True)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (None, "not good at all , never again"),  # no preprocessing.json
        ({"cleaning": {"lowercase": True}}, "not good at all , never again"),  # one from before
        ({"cleaning": {"negation": True}}, "not not_good not_at not_all , never not_again"),
    ],
)
def test_served_with_the_token_rules_it_was_trained_with(
    tiny_model_dir: Path, tmp_path: Path, record: dict[str, object] | None, expected: str
) -> None:
    """The token rules of a model's training text (its preprocessing.json) are what serving
    applies, on the one-text path of the compiled predictor and on batches; a model without
    the record, or with one written before the rules, is served without them."""
    import json
    import shutil

    shutil.copy(tiny_model_dir / "model.bin", tmp_path / "model.bin")
    if record is not None:
        (tmp_path / "preprocessing.json").write_text(json.dumps(record))
    model = load_model(tmp_path / "model.bin")
    text = "Not good at all, never again"
    assert model.prepare_texts([text]) == [expected]
    assert model.top([text], k=2) == model.top([expected], k=2, raw=True)
    assert model.top([text, text + "!"], k=2) == model.top(
        [expected, expected + " !"], k=2, raw=True
    )


def test_the_weights_are_shared_not_copied(tiny_model_dir: Path) -> None:
    """The served weights are a read-only view of the mapped .bin file (shared by processes)."""
    from sentiment.engine import read_bin

    mapped = read_bin(tiny_model_dir / "model.bin", mapped=True)
    assert not mapped.wi.flags.writeable and not mapped.wi.flags.owndata
    copied = read_bin(tiny_model_dir / "model.bin")
    assert copied.wi.flags.writeable and np.array_equal(copied.wi, mapped.wi)


def test_the_engine_takes_only_the_text_extensions_normalizer(tiny_model_dir: Path) -> None:
    """The normalization entry goes from `_text` to `_core` as a named capsule: an integer (an
    address, as it once was) or a capsule of another name is refused, never called."""
    import ctypes

    from sentiment.text import DEFAULT_CLEANING, kernel_options
    from sentiment.text_kernel import normalizer, tables

    native = load_model(tiny_model_dir / "model.bin")._native
    assert native is not None
    opts = kernel_options(DEFAULT_CLEANING)
    refused = "not the capsule sentiment._text.normalize_into"
    with pytest.raises(TypeError, match=refused):
        native.set_normalizer(12345, *tables(), opts)
    new_capsule = ctypes.pythonapi.PyCapsule_New
    new_capsule.restype = ctypes.py_object
    new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    name = ctypes.create_string_buffer(b"another.entry")  # the capsule keeps a pointer to it
    entry = ctypes.cast(ctypes.pythonapi.Py_Initialize, ctypes.c_void_p)
    other = new_capsule(entry, ctypes.addressof(name), None)
    with pytest.raises(TypeError, match=refused):
        native.set_normalizer(other, *tables(), opts)
    native.set_normalizer(normalizer(), *tables(), opts)
    assert native.top_text("great value", 1) is not None


def test_sidecars_are_read_from_an_archive_of_either_order(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """`read_sidecars` finds preprocessing.json and calibration.json in an archive we write
    (first) and in one with model.bin first (archives written before); none in SageMaker's
    (model.bin alone); a file that is not a model.tar.gz is a ModelError naming it."""
    import io
    import tarfile

    from sentiment.errors import InputNotFound, ModelError
    from sentiment.model import read_sidecars, write_model_archive

    sidecars = {"preprocessing.json": b'{"policy": "binary"}', "calibration.json": b"{}"}
    ours = tmp_path / "ours.tar.gz"
    write_model_archive(ours, tiny_model_dir / "model.bin", sidecars)
    with tarfile.open(ours) as tar:
        assert tar.getnames() == ["preprocessing.json", "calibration.json", "model.bin"]
    assert read_sidecars(str(ours)) == sidecars
    older = tmp_path / "older.tar.gz"
    with tarfile.open(older, "w:gz") as tar:
        tar.add(tiny_model_dir / "model.bin", arcname="model.bin")
        for name, data in sidecars.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert read_sidecars(str(older)) == sidecars
    bare = tmp_path / "sagemaker.tar.gz"
    with tarfile.open(bare, "w:gz") as tar:
        tar.add(tiny_model_dir / "model.bin", arcname="model.bin")
    assert read_sidecars(str(bare)) == {}
    with pytest.raises(ModelError, match="model archive"):
        read_sidecars(str(tiny_model_dir / "model.bin"))
    with pytest.raises(InputNotFound, match=r"missing\.tar\.gz"):
        read_sidecars(str(tmp_path / "missing.tar.gz"))
