"""The prepare stage on a real Spark session (one per test session) and the shared data."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import FULL, POLARITY, run_cli
from sentiment import layout
from sentiment.config import Settings
from sentiment.errors import DataError, InputNotFound
from sentiment.labels import Layout, Policy
from sentiment.prepare import prepare, resolve_inputs
from sentiment.prepare.job import start_spark
from sentiment.reviews import RowOptions, clean_file, count_labels

pytestmark = pytest.mark.spark


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    session = start_spark(Settings().replace(spark_driver_memory="1g"), master="local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def merged(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Both shared datasets (full + polarity layouts, all splits) under the binary policy."""
    out = tmp_path_factory.mktemp("merged") / "prepared"
    sources = resolve_inputs([FULL, POLARITY], None, out.parent / "cache")
    return out, prepare(sources, out, spark=spark, policy=Policy.BINARY)


def _lines(folder: Path) -> dict[str, list[str]]:
    return {s: (folder / n).read_text().splitlines() for s, n in layout.PREPARED_SPLITS.items()}


def test_spark_and_python_paths_agree_on_every_shared_row(
    merged: tuple[Path, dict[str, Any]],
) -> None:
    out, manifest = merged
    python: dict[str, set[str]] = {}
    read = 0
    for source in resolve_inputs([FULL, POLARITY], None, out.parent / "cache"):
        for _raw, label, text, reason in clean_file(source.path, source.layout, Policy.BINARY):
            read += 1
            if reason is None:
                python.setdefault(text, set()).add(f"__label__{label} {text}")
    spark_lines = [line for lines in _lines(out).values() for line in lines]
    assert manifest["rows_read"] == read
    assert {line.split(" ", 1)[1] if " " in line else "" for line in spark_lines} == set(python)
    for line in spark_lines:
        text = line.split(" ", 1)[1]
        assert line in python[text]
    assert manifest["rows_written"] == len(spark_lines) == len(python)


def test_manifest_accounts_for_every_row(merged: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = merged
    on_disk = json.loads((out / layout.MANIFEST).read_text())
    assert on_disk == manifest
    written = sum(sum(c.values()) for c in manifest["counts"].values())
    assert manifest["rows_read"] == written + sum(manifest["dropped"].values()) + sum(
        manifest["rejected"].values()
    )
    # Full's 3-star rows are dropped by the binary policy; both layouts are present.
    threes = (FULL / "test.csv").read_text().count('\n"3",') + (
        FULL / "test.csv"
    ).read_text().startswith('"3"')
    assert manifest["dropped"]["dropped_by_policy"] == 1063 + threes
    assert {i["layout"] for i in manifest["inputs"]} == {"full", "polarity"}
    assert all(len(i["sha256"]) == 64 and i["size"] > 0 for i in manifest["inputs"])
    assert manifest["labels"] == ["negative", "positive"]
    assert manifest["cleaning"]["include_title"] is True
    for key in ("policy", "seed", "validation_fraction", "elapsed_seconds", "version"):
        assert key in manifest


def test_splits_share_no_text_and_lines_are_well_formed(
    merged: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = merged
    lines = _lines(out)
    texts = {s: {line.split(" ", 1)[1] for line in ls} for s, ls in lines.items()}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]
    assert 0.05 < len(lines["validation"]) / (len(lines["train"]) + len(lines["validation"])) < 0.15
    for split_lines in lines.values():
        for line in split_lines:
            label, _, text = line.partition(" ")
            assert label in ("__label__negative", "__label__positive")
            assert text and "  " not in text and "\t" not in text and "__label__" not in text


def test_split_is_deterministic_by_seed(spark: Any, tmp_path: Path) -> None:
    sources = resolve_inputs([FULL / "test.csv"], None, tmp_path)
    sources = [type(s)(s.path, s.layout, "train") for s in sources]
    runs = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        prepare(sources, tmp_path / name, spark=spark, seed=seed, validation_fraction=0.2)
        runs.append({s: sorted(ls) for s, ls in _lines(tmp_path / name).items()})
    assert runs[0] == runs[1]
    assert runs[0]["validation"] != runs[2]["validation"]


BROKEN = (
    '"5","Great","Loved it"\n'
    '"1","Bad","Broke in a day"\n'
    '"4","only two columns"\n'
    '"9","Odd","label nine"\n'
    '"2","Meh","bad \xff\xfe bytes"\n'
    '"3","Fine","middling"\n'
    '"1","Open","never closed\n'
    '"5","Best","works, ""really"" well"\n'
)


def test_broken_file_rows_are_counted_and_kept(spark: Any, tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(BROKEN.encode("latin-1"))
    out = tmp_path / "out"
    # 4 of 8 rows rejected: far above the default limit (1% for any one reason).
    sources = resolve_inputs([data], "full", tmp_path)
    with pytest.raises(DataError) as failed:
        prepare(sources, out, spark=spark, validation_fraction=0)
    message = failed.value.render()
    for reason in ("wrong_column_count", "label_outside_layout", "unterminated_quote"):
        assert f"1 of 8 rows (12.5%) as {reason}" in message
    assert "--layout full" in message and "--max-reject-ratio" in message
    assert f"The rejected rows are in {tmp_path / 'out.rejects'}" in message
    assert not out.exists()  # nothing a later stage could take for prepared data
    kept = [
        json.loads(line) for p in (tmp_path / "out.rejects").glob("part-*") for line in p.open()
    ]
    assert len(kept) == 4 and any("never closed" in r["raw"] for r in kept)
    # Allowed, the same rows are accounted for, and the failed run's rejects are gone.
    manifest = prepare(sources, out, spark=spark, validation_fraction=0, max_reject_ratio=0.5)
    assert not (tmp_path / "out.rejects").exists()
    assert manifest["rows_read"] == 8
    assert manifest["rejected"] == {
        "wrong_column_count": 1,
        "label_outside_layout": 1,
        "undecodable_bytes": 1,
        "unterminated_quote": 1,
    }
    assert manifest["dropped"] == {"dropped_by_policy": 1}
    assert manifest["counts"]["train"] == {"negative": 1, "positive": 2}
    assert (
        '__label__positive best best best works , " really " well' in _lines(out)["train"]
    )  # title x3
    rejects = [
        json.loads(line)
        for part in (out / layout.REJECTS_DIR).glob("part-*")
        for line in part.read_text().splitlines()
    ]
    assert sorted(r["reason"] for r in rejects) == sorted(manifest["rejected"])
    assert any("never closed" in r["raw"] for r in rejects)


def test_failed_run_keeps_the_older_good_output(spark: Any, tmp_path: Path) -> None:
    good = tmp_path / "train.csv"
    good.write_text('"5","Great","Loved it"\n"1","Bad","Broke"\n')
    out = tmp_path / "out"
    prepare(resolve_inputs([good], None, tmp_path), out, spark=spark, validation_fraction=0)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    bad = tmp_path / "bad" / "train.csv"
    bad.parent.mkdir()
    bad.write_text('"3","Fine","middling"\n"3","x","y"\n')
    with pytest.raises(DataError, match="No rows left"):
        prepare(resolve_inputs([bad], "full", tmp_path), out, spark=spark)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _sorted_by_label(source: Path, target: Path) -> Path:
    """A copy of a reviews CSV sorted by its label column (stable), as `sort -t, -k1,1 -s`."""
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(sorted(lines, key=lambda line: line.split(",", 1)[0])))
    return target


def _mixed_full(folder: Path) -> Path:
    """The full test sample plus 6,000 full train rows: 2,540 rows of 1 or 2 stars, enough to
    fill the 2,000 first rows of a sorted copy (what the layout was once detected from)."""
    train = (FULL / "train.csv").read_text(encoding="utf-8").splitlines(keepends=True)[:6000]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "train.csv"
    path.write_text((FULL / "test.csv").read_text(encoding="utf-8") + "".join(train))
    return path


def test_layout_is_decided_by_every_row(tmp_path: Path) -> None:
    mixed = _mixed_full(tmp_path / "a")
    ordered = _sorted_by_label(mixed, tmp_path / "train.csv")
    assert ordered.read_text().splitlines()[2539].startswith('"2"')  # 1s and 2s come first
    expected = Counter(line[1] for line in mixed.read_text().splitlines())
    for path in (mixed, ordered):
        [source] = resolve_inputs([path], None, tmp_path)
        assert source.layout == Layout.FULL
        assert source.labels == expected
    # The scan reads what precedes each line's first comma, however the line is written.
    odd = tmp_path / "odd.csv"
    odd.write_bytes(b'"1","a","b"\r\n2,a,b\n"12","a","b"\n\n no comma\n "3" ,x,y\n"4","x","y"')
    assert count_labels(odd) == {"1": 1, "2": 1, "12": 1, "3": 1, "4": 1}
    # A few 3-5 star rows among many 1s and 2s could be either layout: the user says which.
    stray = tmp_path / "stray" / "train.csv"
    stray.parent.mkdir()
    stray.write_text((POLARITY / "test.csv").read_text() + '"3","x","y"\n' * 3)
    with pytest.raises(DataError, match="3 rows of 3-5 stars among 10,287 rows labelled 1 or 2"):
        resolve_inputs([stray], None, tmp_path)
    assert resolve_inputs([stray], "polarity", tmp_path)[0].layout == Layout.POLARITY


def test_layout_detection_and_explicit_option(tmp_path: Path) -> None:
    assert {s.layout for s in resolve_inputs([FULL], None, tmp_path)} == {Layout.FULL}
    assert {s.layout for s in resolve_inputs([POLARITY], None, tmp_path)} == {Layout.POLARITY}
    assert {s.layout for s in resolve_inputs([POLARITY], "full", tmp_path)} == {Layout.FULL}
    assert [s.split for s in resolve_inputs([FULL], None, tmp_path)] == ["train", "test"]
    empty = tmp_path / "x.csv"
    empty.write_text('"a","b","c"\n')
    with pytest.raises(DataError, match="--layout"):
        resolve_inputs([empty], None, tmp_path)
    with pytest.raises(InputNotFound):
        resolve_inputs([tmp_path / "missing"], None, tmp_path)


def test_row_options_round_trip() -> None:
    options = RowOptions(include_title=False, min_tokens=3)
    assert RowOptions.from_dict(options.to_dict()) == options


def test_tgz_input(spark: Any, tmp_path: Path) -> None:
    pytest.importorskip("sentiment.datasets", reason="sentiment.datasets is not written yet")
    import tarfile

    archive = tmp_path / "amazon_review_polarity_csv.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(POLARITY / "test.csv", arcname="amazon_review_polarity_csv/test.csv")
        tar.add(POLARITY / "test.csv", arcname="amazon_review_polarity_csv/train.csv")
    sources = resolve_inputs([archive], None, tmp_path / "cache")
    manifest = prepare(sources, tmp_path / "out", spark=spark)
    assert manifest["rows_read"] == 2 * (POLARITY / "test.csv").read_text().count("\n")


def test_cli_missing_input_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(
        "prepare", "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o")
    )
    assert result.returncode == 3
    assert "Error: Input" in result.stderr and "does not exist" in result.stderr


def test_cli_prepares_a_file(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("".join((FULL / "test.csv").read_text().splitlines(keepends=True)[:300]))
    out = tmp_path / "out"
    result = run_cli(
        "prepare",
        "--input",
        str(data),
        "--output",
        str(out),
        "--policy",
        "stars",
        "--master",
        "local[1]",
        "--no-negation",
        "--elongations",
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / layout.MANIFEST).read_text())
    assert manifest["policy"] == "stars" and manifest["rows_read"] == 300
    # The token rules asked for are the ones recorded (so the model is served with them).
    cleaning = manifest["cleaning"]
    assert (cleaning["negation"], cleaning["elongations"], cleaning["emoticons"]) == (
        False,
        True,
        False,
    )
    assert (out / layout.TRAIN_FILE).read_text().startswith("__label__")


def test_a_titles_negation_scope_stays_in_the_title(spark: Any, tmp_path: Path) -> None:
    """Title copies and body were joined by spaces, so an unpunctuated negated title marked the
    copies after it and the body (`... doesn't not_heat ... not_i not_can not_barely ...`):
    5-8% of the shared rows. Through the compiled kernel, and Python's path (an entity)."""
    train = tmp_path / "train.csv"
    train.write_text(
        '"2","Doesn\'t heat very well","I can barely feel the heater"\n'
        '"4","Not bad","Works fine\\nnot a bit loud\\nquiet &amp; warm"\n'
    )
    sources = resolve_inputs([train], "full", tmp_path)
    prepare(sources, tmp_path / "out", spark=spark, validation_fraction=0)
    copy = "doesn't not_heat not_very not_well"
    assert sorted(_lines(tmp_path / "out")["train"]) == [
        f"__label__negative {copy} {copy} {copy} i can barely feel the heater",
        "__label__positive not not_bad not not_bad not not_bad works fine not not_a not_bit "
        "not_loud quiet & warm",
    ]


def test_duplicates_dropped_or_kept_as_asked(spark: Any, tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    train.write_text('"5","Great","Loved it"\n"5","Great","Loved it"\n"1","Bad","Broke"\n')
    test.write_text('"1","Bad","Broke"\n"4","Good","Works &amp; lasts"\n')
    sources = resolve_inputs([train, test], "full", tmp_path)
    deduped = prepare(sources, tmp_path / "a", spark=spark, validation_fraction=0)
    assert deduped["dropped"] == {"duplicate": 2}
    lines = _lines(tmp_path / "a")
    # A text in train and test is kept in test only; the entity went through Python's path.
    assert lines["train"] == ["__label__positive great great great loved it"]
    assert sorted(lines["test"]) == [
        "__label__negative bad bad bad broke",
        "__label__positive good good good works & lasts",
    ]
    kept = prepare(
        sources,
        tmp_path / "b",
        spark=spark,
        validation_fraction=0,
        options=RowOptions(dedupe=False),
    )
    assert "duplicate" not in kept["dropped"] and kept["rows_written"] == 5
    assert len(_lines(tmp_path / "b")["train"]) == 3


def test_a_label_sorted_copy_prepares_and_evaluates_alike(
    spark: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Issue 13.4: a CSV sorted by stars was taken for the polarity layout (its first rows are
    all 1s and 2s): prepare rejected the 3-5 star rows and evaluate scored only the rest."""
    mixed = _mixed_full(tmp_path / "original")
    ordered = _sorted_by_label(mixed, tmp_path / "sorted" / "train.csv")
    runs = {}
    for name, path in (("original", mixed), ("sorted", ordered)):
        manifest = prepare(
            resolve_inputs([path], None, tmp_path), tmp_path / f"{name}-out", spark=spark
        )
        # The split is a hash of each text (and duplicates keep the smallest code), so the
        # same rows give the same lines whatever their order; Spark writes them in any order.
        lines = {s: sorted(ls) for s, ls in _lines(tmp_path / f"{name}-out").items()}
        counts = {k: manifest[k] for k in ("rows_read", "counts", "dropped", "rejected")}
        runs[name] = (lines, counts, manifest["inputs"][0]["label_counts"])
    assert runs["sorted"] == runs["original"]
    lines, counts, labels = runs["original"]
    threes = labels["3"]
    assert counts["rejected"] == {} and counts["dropped"]["dropped_by_policy"] == threes
    reports = {}
    for name, path in (("original", mixed), ("sorted", ordered)):
        out = tmp_path / f"{name}-report"
        result = run_cli(
            "evaluate", "--model", str(tiny_model_dir / "model.bin"), "--test", str(path),
            "--output", str(out),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"Scored {10486 - threes:,} of 10,486 rows" in result.stderr
        assert f"dropped: {threes:,} dropped_by_policy; rejected: none." in result.stderr
        report = json.loads((out / "report.json").read_text())
        metrics = report["metrics"]
        reports[name] = (
            {k: v for k, v in report["test"].items() if k != "path"},
            {k: metrics[k] for k in ("accuracy", "per_label", "confusion_matrix")},
            # Sums over rows in another order: equal to the last bits.
            [metrics["log_loss"], metrics["calibration"]["ece"], metrics["binary"]["roc_auc"]],
        )
    assert reports["sorted"][:2] == reports["original"][:2]
    assert reports["sorted"][2] == pytest.approx(reports["original"][2], rel=1e-12)
    test, found, _ = reports["original"]
    assert test["source"] == "csv (full layout, binary policy)"
    assert test["examples"] == 10486 - threes and test["dropped"] == {"dropped_by_policy": threes}
    assert test["rejected"] == {} and test["label_counts"] == labels
    assert 0.75 < found["accuracy"] < 1.0
