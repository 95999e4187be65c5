"""Our fastText: its models load in the fastText library and predict the same; it learns as well."""

from __future__ import annotations

from pathlib import Path

import fasttext
import numpy as np
import pytest

from sentiment.engine import EngineParams, Trainer, read_bin, write_bin
from sentiment.errors import DataError

UNICODE_LINES = [
    "__label__positive café crème brûlée was délicieux 😀 !",
    "__label__negative ñandú straße 東京 was awful 😡",
    "__label__positive naïve résumé great great",
]


@pytest.fixture(scope="module")
def corpus(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Train/test files from the shared polarity sample (normalized), plus non-ASCII lines."""
    folder = tmp_path_factory.mktemp("engine")
    lines = (tiny_model_dir / "train.txt").read_text().splitlines()
    (folder / "train.txt").write_text("\n".join(lines[:9000] + UNICODE_LINES * 3) + "\n")
    (folder / "test.txt").write_text("\n".join(lines[20000:23000]) + "\n")
    return {"train": folder / "train.txt", "test": folder / "test.txt", "folder": folder}


def _params(**kw: object) -> EngineParams:
    """BlazingText's defaults (the hyperparameter table's), with `kw` over them."""
    base: dict[str, object] = dict(
        dim=100, lr=0.05, epochs=5, min_count=5, word_ngrams=2, buckets=2_000_000,
        loss="softmax", threads=0, seed=0,
    )  # fmt: skip
    return EngineParams(**(base | kw))  # type: ignore[arg-type]


def _train(path: Path, **kw: object) -> Trainer:
    params = _params(
        **{
            "dim": 10,
            "lr": 0.1,
            "epochs": 5,
            "min_count": 1,
            "word_ngrams": 2,
            "buckets": 200_000,
            "threads": 1,
            "seed": 1,
            **kw,
        }
    )
    trainer = Trainer(params)
    trainer.build_vocab(path)
    for epoch in range(params.epochs):
        trainer.run_epoch(epoch)
    return trainer


@pytest.fixture(scope="module")
def ours(corpus: dict[str, Path]) -> Trainer:
    return _train(corpus["train"])


def test_our_bin_loads_in_fasttext_and_predicts_identically(
    ours: Trainer, corpus: dict[str, Path]
) -> None:
    path = corpus["folder"] / "ours.bin"
    ours.save_bin(path)
    ft = fasttext.load_model(str(path))
    assert tuple(ft.get_labels()) == ours.labels
    texts = [line.split(" ", 1)[1] for line in corpus["test"].read_text().splitlines()[:500]]
    texts += [line.split(" ", 1)[1] for line in UNICODE_LINES] + [
        "never seen words zzzq qqzz",
        "東京 😀",
    ]
    labels, probs = ft.predict(texts, k=2)
    theirs = np.zeros((len(texts), 2))
    for row, (ls, ps) in enumerate(zip(labels, probs, strict=True)):
        for label, p in zip(ls, ps, strict=True):
            theirs[row, ours.labels.index(label)] = p
    mine = ours.predict_proba(texts)
    # Same ids (hashing of words and word n-grams, sign-extended bytes), same weights, same
    # float arithmetic: the same probabilities to the last bit (ours clipped to 1).
    assert np.array_equal(mine, np.minimum(theirs, 1.0).astype(np.float32))
    _, precision, _ = ft.test(str(corpus["test"]))
    assert precision == pytest.approx(ours.accuracy(corpus["test"]), abs=1e-9)


def test_dictionary_matches_fasttext(tiny_model_dir: Path) -> None:
    """Same words, counts, order and labels as the fastText library's dictionary for the same file."""
    trainer = Trainer(_params(dim=10, epochs=1, min_count=2, word_ngrams=2, threads=1))
    trainer.build_vocab(tiny_model_dir / "train.txt")
    ft = fasttext.load_model(
        str(tiny_model_dir / "model.bin")
    )  # trained by fastText with minCount=2
    words, counts = ft.get_words(include_freq=True)
    assert trainer.dictionary is not None
    mine = trainer.dictionary.words[: trainer.nwords]
    ours = dict(
        zip(
            (w.decode() for w in mine),
            trainer.dictionary.counts[: trainer.nwords].tolist(),
            strict=True,
        )
    )
    assert ours == dict(zip(words, counts.tolist(), strict=True))
    assert list(ours.values()) == sorted(
        ours.values(), reverse=True
    )  # most frequent first, as fastText
    assert trainer.labels == tuple(ft.get_labels())
    assert read_bin(tiny_model_dir / "model.bin").ntokens == trainer.ntokens


def test_reading_and_writing_fasttext_files_round_trips_bytes(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A model the fastText library wrote (as SageMaker's BlazingText does) reads and rewrites byte for byte."""
    source = tiny_model_dir / "model.bin"
    model = read_bin(source)
    assert model.loss == "softmax" and model.dim == 10 and model.word_ngrams == 2
    write_bin(tmp_path / "copy.bin", model)
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()


def test_accuracy_is_close_to_fasttext(corpus: dict[str, Path], ours: Trainer) -> None:
    # On 9,000 lines one seed moves accuracy by a point or two: compare means over 3 seeds.
    mine, theirs = [], []
    for seed in (1, 2, 3):
        ft = fasttext.train_supervised(
            str(corpus["train"]), dim=10, lr=0.1, epoch=5, minCount=1, wordNgrams=2,
            bucket=200_000, thread=1, seed=seed, verbose=0,
        )  # fmt: skip
        theirs.append(ft.test(str(corpus["test"]))[1])
        trainer = ours if seed == 1 else _train(corpus["train"], seed=seed)
        mine.append(trainer.accuracy(corpus["test"]))
    assert min(mine) > 0.75
    assert abs(np.mean(mine) - np.mean(theirs)) < 0.015, (mine, theirs)


def test_snapshot_and_restore(corpus: dict[str, Path]) -> None:
    trainer = _train(corpus["train"], epochs=3)
    snap = trainer.snapshot()
    before = trainer.accuracy(corpus["test"])
    probs = trainer.predict_proba(["great product", "awful"])
    trainer.run_epoch(2)  # moves the weights
    trainer.wi *= 0.5
    assert not np.array_equal(trainer.predict_proba(["great product", "awful"]), probs)
    trainer.restore(snap)
    assert trainer.accuracy(corpus["test"]) == before
    assert np.array_equal(trainer.predict_proba(["great product", "awful"]), probs)


def test_epoch_stats_and_learning_rate_decay(corpus: dict[str, Path]) -> None:
    trainer = Trainer(
        _params(dim=10, lr=0.2, epochs=4, min_count=1, buckets=10_000, threads=2, seed=3)
    )
    trainer.build_vocab(corpus["train"])
    seen: list[tuple[int, int]] = []
    stats = [
        trainer.run_epoch(e, progress=lambda done, total: seen.append((done, total)))
        for e in range(4)
    ]
    assert [s.epoch for s in stats] == [1, 2, 3, 4]
    assert stats[-1].loss < stats[0].loss and stats[-1].train_accuracy > stats[0].train_accuracy
    assert [round(s.lr, 3) for s in stats] == [0.15, 0.1, 0.05, 0.0]
    assert all(s.words_per_sec > 0 for s in stats)
    assert seen[-1][0] == seen[-1][1] == trainer.ntokens


def test_words_only_model_has_no_buckets(corpus: dict[str, Path], tmp_path: Path) -> None:
    trainer = _train(corpus["train"], word_ngrams=1, epochs=1)
    trainer.save_bin(tmp_path / "unigram.bin")
    ft = fasttext.load_model(str(tmp_path / "unigram.bin"))
    assert ft.get_input_matrix().shape[0] == trainer.nwords
    assert (
        ft.predict("great great great")[0][0]
        == trainer.labels[int(trainer.predict_proba(["great great great"])[0].argmax())]
    )


def test_bad_training_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match="empty"):
        Trainer(_params()).build_vocab(empty)
    unlabelled = tmp_path / "plain.txt"
    unlabelled.write_text("just some words\nand more words\n")
    with pytest.raises(DataError, match="no labels"):
        Trainer(_params()).build_vocab(unlabelled)
    one_label = tmp_path / "one.txt"
    one_label.write_text("__label__positive good\n__label__positive great\n")
    trainer = Trainer(_params())
    with pytest.raises(DataError, match=r"one label only \(__label__positive\)"):
        trainer.build_vocab(one_label)
    assert trainer.data is None  # refused before the file was encoded


def test_a_file_scanned_in_pieces_gives_the_same_dictionary_and_encoding(
    corpus: dict[str, Path],
) -> None:
    from sentiment.engine.dictionary import (
        build_dictionary,
        encode,
        encode_chunks,
        scan,
        scan_chunks,
    )

    path = corpus["train"]
    whole = scan(np.fromfile(path, np.uint8))
    one = build_dictionary(whole, 2)
    pieces = list(scan_chunks(path, chunk_bytes=50_000))
    assert len(pieces) > 20 and all(p.buf[-1] == 10 for p in pieces[:-1])  # cut after newlines
    many = build_dictionary(iter(pieces), 2)
    assert many.words == one.words and many.ntokens == one.ntokens == whole.h64.size
    assert np.array_equal(many.counts, one.counts) and np.array_equal(many.keys, one.keys)
    a = encode(whole, one, 2, 200_000)
    b = encode_chunks(iter(pieces), many, 2, 200_000)
    for field in ("line_ptr", "ids", "label_ptr", "labels", "ntok"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_the_compiled_core_rejects_arrays_that_do_not_fit(ours: Trainer) -> None:
    """Bad arrays are ValueErrors before any memory is touched, never a crash."""
    from sentiment.engine import _core, kernels

    wi, wo = ours.wi, ours.wo
    line_ptr = np.array([0, 2], np.int64)
    label_ptr = np.array([0, 1], np.int64)
    labels = np.array([0], np.int32)
    ok = np.array([0, 1], np.int32)
    best = int(np.argmax(wo @ wi[[0, 1]].mean(axis=0)))
    assert kernels.count_correct(wi, wo, line_ptr, ok, label_ptr, labels) == (int(best == 0), 1)
    outside = np.array([0, wi.shape[0]], np.int32)
    with pytest.raises(ValueError, match="outside the input matrix"):
        kernels.count_correct(wi, wo, line_ptr, outside, label_ptr, labels)
    with pytest.raises(ValueError, match="outside the input matrix"):
        kernels.count_correct(wi, wo, line_ptr, np.array([-1, 0], np.int32), label_ptr, labels)
    with pytest.raises(ValueError, match="offsets"):
        kernels.count_correct(wi, wo, np.array([0, 3], np.int64), ok, label_ptr, labels)
    with pytest.raises(ValueError, match="index the output matrix"):
        kernels.count_correct(wi, wo, line_ptr, ok, label_ptr, np.array([wo.shape[0]], np.int32))
    bounds = np.array([0, 1], np.int64)
    args = (line_ptr, ok, label_ptr, labels, np.array([2], np.int32), bounds, 0.1, 0.0, 10.0, 0)
    with pytest.raises(ValueError, match="float32"):
        kernels.train_lines(wi.astype(np.float64), wo, *args)
    with pytest.raises(ValueError, match="bounds"):
        kernels.train_lines(wi, wo, *args[:5], np.array([0, 2], np.int64), *args[6:])
    with pytest.raises(ValueError, match="share a dimension"):
        kernels.count_correct(wi, wo[:, :3].copy(), line_ptr, ok, label_ptr, labels)
    words = b"".join(w + b"\n" for w in ours._dict.words)
    dim, nwords = ours.params.dim, ours.nwords
    with pytest.raises(ValueError, match="nwords \\+ buckets rows"):
        _core.Predictor(wi[:-1], wo, dim, words, nwords, 2, ours.buckets)
    with pytest.raises(ValueError, match="dictionary entries"):
        _core.Predictor(wi, wo, dim, words + b"extra\n", nwords, 2, ours.buckets)
