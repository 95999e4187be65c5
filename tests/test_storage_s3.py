"""S3 behind the storage seam, against moto's S3 server (real boto3 over HTTP on 127.0.0.1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aws_fixtures import Aws, upload
from conftest import POLARITY, REPO, run_cli
from sentiment.errors import ConfigError, InputNotFound
from sentiment.storage import Bucket, LocalBucket, open_bucket, publish_tree


def _objects(aws: Aws, uri: str) -> list[str]:
    name = uri.removeprefix("s3://").split("/", 1)[0]
    answer = aws.client("s3").list_objects_v2(Bucket=name)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in answer.get("Contents", []))


def test_open_bucket_picks_the_backend(tmp_path: Path, s3_bucket_uri: str) -> None:
    from sentiment.aws.s3 import S3Bucket

    local = open_bucket(tmp_path)
    remote = open_bucket(f"{s3_bucket_uri}/jobs")
    assert isinstance(local, LocalBucket) and isinstance(local, Bucket)
    assert isinstance(remote, S3Bucket) and isinstance(remote, Bucket)
    assert remote.uri == f"{s3_bucket_uri}/jobs"
    with pytest.raises(ConfigError, match="not supported"):
        open_bucket("gs://elsewhere/x")


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_both_backends_behave_alike(
    kind: str, tmp_path: Path, s3_bucket_uri: str, aws: Aws
) -> None:
    bucket = open_bucket(tmp_path / "b" if kind == "local" else f"{s3_bucket_uri}/pre/fix")
    assert not bucket.exists("a/job.json")
    bucket.write_json("a/job.json", {"status": "Completed"})
    bucket.write_bytes("a/output/model.tar.gz", b"x" * 10)
    source = tmp_path / "f.txt"
    source.write_text("hello\n")
    bucket.put_file("b/train.txt", source)
    assert bucket.read_json("a/job.json") == {"status": "Completed"}
    assert bucket.list() == ["a/job.json", "a/output/model.tar.gz", "b/train.txt"]
    assert bucket.list("a") == ["a/job.json", "a/output/model.tar.gz"]
    assert bucket.children() == ["a", "b"]
    assert bucket.get_file("b/train.txt", tmp_path / "copy.txt").read_text() == "hello\n"
    bucket.delete("b/train.txt")
    assert not bucket.exists("b/train.txt")
    with pytest.raises(InputNotFound):
        bucket.read_bytes("b/train.txt")
    with pytest.raises(ConfigError, match="outside"):
        bucket.read_bytes("../x")
    if kind == "s3":
        # Landed whole: the temporary keys are gone, the final ones are under the prefix.
        assert _objects(aws, s3_bucket_uri) == [
            "pre/fix/a/job.json",
            "pre/fix/a/output/model.tar.gz",
        ]


def test_a_failed_publish_leaves_nothing_under_final_names(
    tmp_path: Path, s3_bucket_uri: str, aws: Aws
) -> None:
    folder = tmp_path / "prepared"
    folder.mkdir()
    (folder / "train.txt").write_text("__label__positive good\n")
    (folder / "manifest.json").write_text("{}\n")
    (folder / "z-test.txt").write_text("x")
    (folder / ".scratch").mkdir()  # a job's temporary files: never published
    (folder / ".scratch" / "model.bin").write_text("partial")
    bucket = open_bucket(f"{s3_bucket_uri}/prepared")

    # The network failing mid-publish, after train.txt landed (the order is every other file
    # first, the manifest last): the one fault injected, at the boundary to S3.
    class Vanishing(Exception):
        pass

    original = bucket.put_file

    def put_file(key: str, source: Path) -> None:
        if key.endswith("z-test.txt"):
            raise Vanishing(key)
        original(key, source)

    bucket.put_file = put_file  # type: ignore[method-assign]
    with pytest.raises(Vanishing):
        publish_tree(folder, bucket, "", last=("manifest.json",))
    assert _objects(aws, s3_bucket_uri) == []
    bucket.put_file = original  # type: ignore[method-assign]
    written = publish_tree(folder, bucket, "", last=("manifest.json",))
    assert written == ["train.txt", "z-test.txt", "manifest.json"]


def test_models_load_from_s3(
    tiny_model_dir: Path, tmp_path: Path, s3_bucket_uri: str, aws: Aws
) -> None:
    import tarfile

    from sentiment.model import load_model

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_model_dir / "model.bin", arcname="model.bin")
    upload(aws, f"{s3_bucket_uri}/jobs/j1/output/model.tar.gz", archive)
    local = load_model(archive, cache_dir=tmp_path / "cache")
    texts = ["great product, works", "broken on arrival, awful"]
    for ref in (f"{s3_bucket_uri}/jobs/j1/output/model.tar.gz", f"{s3_bucket_uri}/jobs/j1"):
        remote = load_model(ref, cache_dir=tmp_path / "cache")
        assert remote.predict_proba(texts).tolist() == local.predict_proba(texts).tolist()
    # A job name in an s3:// bucket.
    by_name = load_model(
        "j1", bucket=open_bucket(f"{s3_bucket_uri}/jobs"), cache_dir=tmp_path / "c2"
    )
    assert by_name.sha256 == local.sha256
    with pytest.raises(InputNotFound):
        load_model(f"{s3_bucket_uri}/jobs/nothing/model.tar.gz", cache_dir=tmp_path / "cache")


def _cli(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("--cache-dir", str(tmp_path / "cache"), *args, env=env)


def test_train_evaluate_and_list_jobs_on_s3(tmp_path: Path, s3_bucket_uri: str, aws: Aws) -> None:
    """train reads s3:// channels and publishes the job to an s3:// bucket; jobs list and
    evaluate read it there; the report lands in S3 with report.json last."""
    from conftest import read_reviews
    from sentiment.labels import Layout, Policy, map_label, with_prefix
    from sentiment.text import UNRECORDED_CLEANING, compose, normalize

    lines = []
    for label, title, body in read_reviews(POLARITY / "train.csv", limit=3000):
        name = map_label(Layout.POLARITY, label, Policy.BINARY)
        lines.append(
            f"{with_prefix(name or '')} {normalize(compose(title, body), UNRECORDED_CLEANING)}"
        )
    train = tmp_path / "train.txt"
    train.write_text("\n".join(lines[:2500]) + "\n")
    test = tmp_path / "test.txt"
    test.write_text("\n".join(lines[2500:]) + "\n")
    upload(aws, f"{s3_bucket_uri}/prepared/train.txt", train)
    upload(aws, f"{s3_bucket_uri}/prepared/test.txt", test)
    jobs = f"{s3_bucket_uri}/jobs"
    done = _cli(
        [
            "--bucket",
            jobs,
            "train",
            "--input",
            f"{s3_bucket_uri}/prepared",
            "--job-name",
            "j1",
            "--hp",
            "epochs=2",
            "--hp",
            "vector_dim=10",
            "--hp",
            "buckets=10000",
            "--hp",
            "threads=1",
        ],
        aws.env,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert f"{jobs}/j1/output/model.tar.gz" in done.stdout
    keys = _objects(aws, s3_bucket_uri)
    assert "jobs/j1/job.json" in keys and "jobs/j1/output/model.tar.gz" in keys
    listed = _cli(["--bucket", jobs, "jobs", "list"], aws.env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "j1" in listed.stdout and "Completed" in listed.stdout
    report = _cli(
        [
            "--bucket",
            jobs,
            "evaluate",
            "--model",
            "j1",
            "--test",
            f"{s3_bucket_uri}/prepared/test.txt",
        ],
        aws.env,
        tmp_path,
    )
    assert report.returncode == 0, report.stderr
    keys = _objects(aws, s3_bucket_uri)
    assert "jobs/j1/evaluation/report.json" in keys and "jobs/j1/evaluation/report.html" in keys
    # A name taken in S3 is refused before any training.
    again = _cli(
        [
            "--bucket",
            jobs,
            "train",
            "--train",
            f"{s3_bucket_uri}/prepared/train.txt",
            "--job-name",
            "j1",
        ],
        aws.env,
        tmp_path,
    )
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.spark
def test_prepare_reads_and_writes_s3_in_local_mode(
    tmp_path: Path, s3_bucket_uri: str, aws: Aws
) -> None:
    """Spark in local mode: the S3 input folder is staged through the seam, the output folder is
    written locally and published with its manifest last."""
    from conftest import FULL

    for name in ("train.csv", "test.csv"):
        part = tmp_path / name
        part.write_text("".join((FULL / name).read_text().splitlines(keepends=True)[:300]))
        upload(aws, f"{s3_bucket_uri}/reviews/full/{name}", part)
    out = f"{s3_bucket_uri}/prepared"
    done = _cli(
        [
            "prepare",
            "--input",
            f"{s3_bucket_uri}/reviews/full",
            "--output",
            out,
            "--policy",
            "stars",
            "--master",
            "local[1]",
        ],
        aws.env,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    keys = _objects(aws, s3_bucket_uri)
    for name in ("train.txt", "validation.txt", "test.txt", "manifest.json"):
        assert f"prepared/{name}" in keys
    manifest = open_bucket(out).read_json("manifest.json")
    assert manifest["rows_read"] == 600 and manifest["policy"] == "stars"
    assert open_bucket(out).read_bytes("train.txt").startswith(b"__label__")
    missing = _cli(
        [
            "prepare",
            "--input",
            f"{s3_bucket_uri}/nothing/here.csv",
            "--output",
            f"{s3_bucket_uri}/p2",
        ],
        aws.env,
        tmp_path,
    )
    assert missing.returncode == 3, missing.stderr
    assert not [k for k in _objects(aws, s3_bucket_uri) if k.startswith("p2/")]


def test_serve_a_model_from_s3(
    tiny_model_dir: Path, tmp_path: Path, s3_bucket_uri: str, aws: Aws
) -> None:
    import tarfile

    import httpx

    from conftest import start_endpoint

    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_model_dir / "model.bin", arcname="model.bin")
    upload(aws, f"{s3_bucket_uri}/jobs/j1/output/model.tar.gz", archive)
    process, url = start_endpoint(
        f"{s3_bucket_uri}/jobs/j1/output/model.tar.gz",
        tmp_path / "serve.log",
        env=aws.env | {"SENTIMENT_CACHE_DIR": str(tmp_path / "cache")},
    )
    try:
        answer = httpx.post(f"{url}/invocations", json={"instances": ["love it, great"]})
        assert answer.status_code == 200
        assert answer.json()[0]["label"][0] == "__label__positive"
    finally:
        process.stop()


def test_run_refuses_an_s3_output(tmp_path: Path) -> None:
    """`run` works in a local folder; an s3:// --output must not become a folder named "s3:"."""
    import os

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentiment",
            "run",
            "--input",
            str(POLARITY),
            "--output",
            "s3://b/x",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        timeout=60,
    )
    assert done.returncode == 2 and "not a local folder" in done.stderr
    assert not (tmp_path / "s3:").exists()


def test_a_failed_job_on_s3_publishes_its_record_only(
    tmp_path: Path, s3_bucket_uri: str, aws: Aws
) -> None:
    """A job that fails after it started has a Failed record, as a local one, and no model."""
    train = tmp_path / "train.txt"
    train.write_text("no label on this line\nnor on this one\n")
    upload(aws, f"{s3_bucket_uri}/in/train.txt", train)
    jobs = f"{s3_bucket_uri}/jobs"
    failed = _cli(
        [
            "--bucket",
            jobs,
            "train",
            "--train",
            f"{s3_bucket_uri}/in/train.txt",
            "--job-name",
            "f1",
            "--hp",
            "threads=1",
        ],
        aws.env,
        tmp_path,
    )
    assert failed.returncode == 4, failed.stderr
    assert [k for k in _objects(aws, s3_bucket_uri) if k.startswith("jobs/")] == [
        "jobs/f1/job.json"
    ]
    record = open_bucket(jobs).read_json("f1/job.json")
    assert record["status"] == "Failed" and "no labels" in record["failure_reason"]
    assert record["inputs"]["train"]["path"] == f"{s3_bucket_uri}/in/train.txt"
