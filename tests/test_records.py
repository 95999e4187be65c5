"""Unit tests of what otherwise runs only end to end: a killed job's liveness, unreadable job
records, a prepared folder's bad manifest, the model archive's refusals, and the serving
workers' agreement on a swap when one of them cannot follow it."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentiment import layout
from sentiment.errors import DataError, ModelError
from sentiment.model import _unpack
from sentiment.records import list_jobs, read_job, read_record, with_liveness
from sentiment.serve.peers import Peers
from sentiment.storage import open_bucket
from sentiment.train.job import preprocessing_for


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _in_progress(pid: int, host: str | None = None) -> dict[str, object]:
    return {
        "name": "job",
        "status": "InProgress",
        "process": {"pid": pid, "host": host or socket.gethostname()},
    }


def test_a_job_whose_process_is_dead_reads_as_failed() -> None:
    record = with_liveness(_in_progress(_dead_pid()))
    assert record["status"] == "Failed"
    assert "ended without finishing" in record["failure_reason"]
    assert "No model was written." in record["failure_reason"]


def test_a_job_whose_process_lives_or_runs_elsewhere_stays_in_progress() -> None:
    assert with_liveness(_in_progress(os.getpid()))["status"] == "InProgress"
    # Another host's pid says nothing about this machine's processes.
    assert with_liveness(_in_progress(_dead_pid(), "other-host"))["status"] == "InProgress"


@pytest.mark.parametrize("pid", [0, -1], ids=["zero", "negative"])
def test_a_record_naming_no_process_reads_as_failed(pid: int) -> None:
    """pid 0 and -1 are no process: os.kill(0, 0) would ask this process's own group (alive)."""
    assert with_liveness(_in_progress(pid))["status"] == "Failed"


def test_a_tuning_job_whose_process_is_dead_reads_as_failed(tmp_path: Path) -> None:
    """Training and tuning records are read by the one reader (sentiment.records)."""
    bucket = open_bucket(tmp_path)
    bucket.write_json("t/tuning.json", _in_progress(_dead_pid()))
    record = read_record(bucket, "t/tuning.json", name="t", what="tuning")
    assert record["status"] == "Failed"
    assert record["failure_reason"].startswith("The tuning process (pid ")
    assert "No model was written." not in record["failure_reason"]
    bucket.write_bytes("u/tuning.json", b"{")
    with pytest.raises(DataError, match=r"record of tuning job 'u' \(u/tuning.json\) is not valid"):
        read_record(bucket, "u/tuning.json", name="u", what="tuning")


def test_read_job_reports_a_killed_job_as_failed_and_leaves_its_file(tmp_path: Path) -> None:
    bucket = open_bucket(tmp_path)
    record = _in_progress(_dead_pid())
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / layout.JOB_RECORD).write_text(json.dumps(record))
    assert read_job(bucket, "job")["status"] == "Failed"
    assert json.loads((tmp_path / "job" / layout.JOB_RECORD).read_text()) == record


def test_jobs_list_skips_an_unreadable_record(tmp_path: Path) -> None:
    bucket = open_bucket(tmp_path)
    for name, text in [
        ("good", json.dumps({"name": "good", "status": "Completed"})),
        ("corrupt", '{"name": "corrupt", "stat'),
        ("binary", "\udcff"),
    ]:
        (tmp_path / name).mkdir()
        (tmp_path / name / layout.JOB_RECORD).write_bytes(text.encode("utf-8", "surrogateescape"))
    (tmp_path / "no-record").mkdir()
    assert [r["name"] for r in list_jobs(bucket)] == ["good"]
    with pytest.raises(DataError, match=r"record of job 'corrupt'.*not valid JSON"):
        read_job(bucket, "corrupt")


def _prepared(tmp_path: Path, manifest: str | None) -> Path:
    train = tmp_path / "train.txt"
    train.write_text("__label__positive good\n")
    if manifest is not None:
        (tmp_path / layout.MANIFEST).write_text(manifest)
    return train


def test_a_train_file_without_manifest_has_no_preprocessing(tmp_path: Path) -> None:
    assert preprocessing_for(_prepared(tmp_path, None)) is None


@pytest.mark.parametrize(
    "manifest",
    [
        '{"policy": "binary", "clean',
        "[1, 2]",
        '{"cleaning": 5}',
        '{"cleaning": {"stemming": true}}',
    ],
    ids=["truncated", "not-an-object", "cleaning-not-an-object", "unknown-cleaning-option"],
)
def test_a_bad_manifest_is_a_clear_error(tmp_path: Path, manifest: str) -> None:
    with pytest.raises(DataError) as caught:
        preprocessing_for(_prepared(tmp_path, manifest))
    assert str(tmp_path / layout.MANIFEST) in str(caught.value)
    assert "cannot be read" in str(caught.value)
    assert "sentiment prepare" in caught.value.render()


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _file(name: str, data: bytes = b"weights") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def test_unpack_skips_members_outside_the_archive(tmp_path: Path) -> None:
    archive = _archive(
        tmp_path / "model.tar.gz",
        [_file("../escaped"), _file("/absolute-escape"), _file("model.bin")],
    )
    target = _unpack(archive, tmp_path / "cache")
    assert sorted(p.name for p in target.iterdir()) == ["model.bin"]
    assert not list(tmp_path.rglob("*escape*"))


def test_unpack_refuses_a_member_that_climbs_out_under_another_spelling(tmp_path: Path) -> None:
    # Not caught by the name check ("./.." does not start with ".."): tarfile's "data" filter
    # refuses it, else it would land beside the unpacked models.
    archive = _archive(tmp_path / "model.tar.gz", [_file("model.bin"), _file("./../escaped")])
    with pytest.raises(ModelError, match=r"is not a readable model\.tar\.gz"):
        _unpack(archive, tmp_path / "cache")
    assert not list(tmp_path.rglob("escaped"))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE], ids=["symlink", "hardlink"])
def test_unpack_does_not_follow_links(tmp_path: Path, kind: bytes) -> None:
    secret = tmp_path / "secret"
    secret.write_text("not a model")
    archive = _archive(tmp_path / "model.tar.gz", [_link("model.bin", str(secret), kind)])
    with pytest.raises(ModelError, match=r"holds no model\.bin"):
        _unpack(archive, tmp_path / "cache")


def test_unpack_refuses_an_archive_without_model_bin(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "model.tar.gz", [_file("weights.bin")])
    with pytest.raises(ModelError, match=r"holds no model\.bin") as caught:
        _unpack(archive, tmp_path / "cache")
    assert "model.bin at their root" in caught.value.render()
    assert not (tmp_path / "cache" / "models").exists() or not any(
        (tmp_path / "cache" / "models").iterdir()
    )  # nothing half-unpacked is left to be taken for a model


@pytest.mark.parametrize("cut", [0, 10, 60], ids=["empty", "header-only", "truncated"])
def test_unpack_refuses_a_corrupt_gzip(tmp_path: Path, cut: int) -> None:
    whole = _archive(tmp_path / "whole.tar.gz", [_file("model.bin", bytes(range(256)) * 64)])
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(whole.read_bytes()[:cut])
    with pytest.raises(ModelError, match=r"is not a readable model\.tar\.gz"):
        _unpack(archive, tmp_path / "cache")


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Peers]:
    """The shared state of a three-worker endpoint (the workers are played in-process)."""
    shared = Peers.create(multiprocessing.get_context("spawn"), 3)
    shared.start("first", _model(tmp_path, "first"))
    yield shared
    shutil.rmtree(shared.folder, ignore_errors=True)


def _model(tmp_path: Path, name: str) -> Path:
    model = tmp_path / name / layout.MODEL_BIN
    model.parent.mkdir()
    model.write_bytes(b"weights")
    return model


def _publish(peers: Peers, tmp_path: Path) -> int:
    return peers.publish("swapped", _model(tmp_path, "swapped"))


def test_a_swap_waits_for_every_worker_and_counts_the_ones_that_failed(
    peers: Peers, tmp_path: Path
) -> None:
    generation = _publish(peers, tmp_path)
    assert peers.latest()[:2] == (generation, "swapped")
    first, second, third = (peers.for_worker(i) for i in range(3))
    first.mark_applied(generation)
    second.mark_applied(generation)
    third.mark_failed(generation)  # could not load the swapped-to model; keeps its own
    clock = time.monotonic()
    assert peers.wait_applied(generation, timeout=10) == 2
    assert time.monotonic() - clock < 5  # a failure is an answer: no waiting out the timeout


def test_a_swap_awaits_a_worker_whose_last_word_was_on_an_older_one(
    peers: Peers, tmp_path: Path
) -> None:
    older = peers.publish("older", _model(tmp_path, "older"))
    generation = _publish(peers, tmp_path)
    peers.for_worker(0).mark_applied(generation)
    peers.for_worker(1).mark_failed(older)  # no answer to this swap: still awaited...
    peers.for_worker(2).mark_applied(generation)
    clock = time.monotonic()
    assert peers.wait_applied(generation, timeout=0.3) == 2
    assert time.monotonic() - clock >= 0.3  # ...until the timeout, not forever
