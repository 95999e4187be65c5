"""The bucket seam and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment.errors import ConfigError, InputNotFound
from sentiment.files import atomic_directory, atomic_path, atomic_write_json
from sentiment.storage import open_bucket


def test_local_bucket_round_trip(tmp_path: Path) -> None:
    bucket = open_bucket(tmp_path / "b")
    bucket.write_json("job-1/job.json", {"status": "Completed"})
    bucket.write_bytes("job-1/output/model.tar.gz", b"abc")
    source = tmp_path / "f.txt"
    source.write_text("hello")
    bucket.put_file("data/f.txt", source)
    assert bucket.read_json("job-1/job.json") == {"status": "Completed"}
    assert bucket.exists("job-1/output/model.tar.gz") and not bucket.exists("job-2/job.json")
    assert bucket.list() == ["data/f.txt", "job-1/job.json", "job-1/output/model.tar.gz"]
    assert bucket.list("job-1/output") == ["job-1/output/model.tar.gz"]
    assert bucket.local_path("data/f.txt").read_text() == "hello"


def test_file_urls_and_unsupported_schemes(tmp_path: Path) -> None:
    assert open_bucket(f"file://{tmp_path}").root == tmp_path
    with pytest.raises(ConfigError, match="Bucket scheme 'gs' is not supported"):
        open_bucket("gs://my-bucket/prefix")


def test_keys_cannot_leave_the_bucket(tmp_path: Path) -> None:
    bucket = open_bucket(tmp_path / "b")
    with pytest.raises(ConfigError, match="outside the bucket"):
        bucket.write_bytes("../escape.txt", b"x")
    assert not (tmp_path / "escape.txt").exists()


def test_missing_key_is_input_not_found(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound, match=r"'nope\.json' is not in the bucket"):
        open_bucket(tmp_path).read_bytes("nope.json")


def test_failed_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "half')
        raise RuntimeError("killed mid-write")
    assert target.read_text().strip().replace(" ", "").replace("\n", "") == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_failed_atomic_directory_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    with atomic_directory(target) as tmp:
        (tmp / "train.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "train.txt").write_text("half")
        raise RuntimeError("job failed")
    assert (target / "train.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]
    with atomic_directory(target) as tmp:
        (tmp / "train.txt").write_text("new")
    assert (target / "train.txt").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["prepared"]
