"""S3 behind the storage seam, against moto's S3 server (real boto3 over HTTP on 127.0.0.1)."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from aws_fixtures import Aws, upload
from conftest import POLARITY, run_cli, sample_splits
from sentiment.errors import ConfigError, InputNotFound
from sentiment.storage import Bucket, LocalBucket, open_bucket, publish_tree, staged_tree


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
        assert aws.keys(s3_bucket_uri) == [
            "pre/fix/a/job.json",
            "pre/fix/a/output/model.tar.gz",
        ]


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_streams_and_staged_trees_land_whole(
    kind: str, tmp_path: Path, s3_bucket_uri: str, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_write/open_read stream an object (S3: a multipart upload, here in 5 MiB parts, S3's
    smallest); a block that raises leaves no object; staged_tree replaces a set whole."""
    from sentiment.aws.s3 import _Upload

    monkeypatch.setattr(_Upload, "PART", 5 << 20)
    root = str(tmp_path / "b") if kind == "local" else f"{s3_bucket_uri}/b"
    bucket = open_bucket(f"{root}/stream")
    line = b"__label__positive " + b"y" * 1000 + b"\n"
    with bucket.open_write("big.txt") as out:
        for _ in range(12_000):  # 12 MB: three parts
            out.write(line)
    with bucket.open_read("big.txt") as fh:
        assert sum(1 for got in fh if got == line) == 12_000

    class Vanishing(Exception):
        pass

    with pytest.raises(Vanishing), bucket.open_write("half.txt") as out:
        out.write(line * 6_000)
        raise Vanishing
    assert bucket.list() == ["big.txt"]

    final = open_bucket(f"{root}/prepared")
    final.write_bytes("rejects/part-00000.jsonl", b"{}\n")  # an earlier run's, not in the new set
    final.write_bytes("manifest.json", b"{}\n")
    with pytest.raises(Vanishing), staged_tree(f"{root}/prepared", last=("manifest.json",)) as t:
        t.write_bytes("train.txt", b"new\n")
        raise Vanishing
    assert final.list() == ["manifest.json", "rejects/part-00000.jsonl"]
    with staged_tree(f"{root}/prepared", last=("manifest.json",)) as t:
        with t.open_write("train.txt") as out:
            out.write(b"new\n")
        t.write_json("manifest.json", {"rows": 1})
    assert final.list() == ["manifest.json", "train.txt"]
    assert final.read_json("manifest.json") == {"rows": 1}
    if kind == "s3":
        assert not [k for k in aws.keys(s3_bucket_uri) if ".tmp-" in k]
        uploads = aws.client("s3").list_multipart_uploads(  # type: ignore[attr-defined]
            Bucket=s3_bucket_uri.removeprefix("s3://")
        )
        assert not uploads.get("Uploads")


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
    assert aws.keys(s3_bucket_uri) == []
    bucket.put_file = original  # type: ignore[method-assign]
    written = publish_tree(folder, bucket, "", last=("manifest.json",))
    assert written == ["train.txt", "z-test.txt", "manifest.json"]


@pytest.fixture
def s3_model(tiny_model_dir: Path, tmp_path: Path, s3_bucket_uri: str, aws: Aws) -> Path:
    """The tiny model as a SageMaker archive, here and uploaded as job j1's output in S3."""
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tiny_model_dir / "model.bin", arcname="model.bin")
    upload(aws, f"{s3_bucket_uri}/jobs/j1/output/model.tar.gz", archive)
    return archive


def test_models_load_from_s3(s3_model: Path, tmp_path: Path, s3_bucket_uri: str) -> None:
    from sentiment.model import load_model

    local = load_model(s3_model, cache_dir=tmp_path / "cache")
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


@dataclass
class S3Job:
    """Job j1 trained from s3:// channels into an s3:// bucket, then listed, evaluated there and
    trained again under the same name; with the bucket's keys after training and evaluating."""

    jobs: str
    done: CompletedProcess[str]
    trained_keys: list[str]
    listed: CompletedProcess[str]
    report: CompletedProcess[str]
    evaluated_keys: list[str]
    again: CompletedProcess[str]


@pytest.fixture(scope="module")
def s3_job(aws: Aws, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> S3Job:
    tmp, bucket = tmp_path_factory.mktemp("s3-job"), aws.new_bucket()
    sample_splits(tiny_model_dir, tmp, train=slice(2500), test=slice(2500, 3000))
    for name in ("train.txt", "test.txt"):
        upload(aws, f"{bucket}/prepared/{name}", tmp / name)
    cache, jobs = tmp / "cache", f"{bucket}/jobs"
    hp = ("epochs=2", "vector_dim=10", "buckets=10000", "threads=1")
    done = aws.cli(
        cache, "--bucket", jobs, "train", "--input", f"{bucket}/prepared", "--job-name", "j1",
        *(f"--hp={value}" for value in hp),
    )  # fmt: skip
    trained_keys = aws.keys(bucket)
    listed = aws.cli(cache, "--bucket", jobs, "jobs", "list")
    report = aws.cli(
        cache, "--bucket", jobs, "evaluate", "--model", "j1", "--test",
        f"{bucket}/prepared/test.txt",
    )  # fmt: skip
    evaluated_keys = aws.keys(bucket)
    again = aws.cli(
        cache, "--bucket", jobs, "train", "--train", f"{bucket}/prepared/train.txt",
        "--job-name", "j1",
    )  # fmt: skip
    return S3Job(jobs, done, trained_keys, listed, report, evaluated_keys, again)


def test_train_reads_s3_channels_and_publishes_the_job_to_s3(s3_job: S3Job) -> None:
    assert s3_job.done.returncode == 0, s3_job.done.stderr
    assert f"{s3_job.jobs}/j1/output/model.tar.gz" in s3_job.done.stdout
    assert {"jobs/j1/job.json", "jobs/j1/output/model.tar.gz"} <= set(s3_job.trained_keys)


def test_jobs_list_reads_an_s3_bucket(s3_job: S3Job) -> None:
    assert s3_job.listed.returncode == 0, s3_job.listed.stderr
    assert "j1" in s3_job.listed.stdout and "Completed" in s3_job.listed.stdout


def test_evaluate_reads_a_job_in_s3_and_writes_its_report_there(s3_job: S3Job) -> None:
    assert s3_job.report.returncode == 0, s3_job.report.stderr
    report = {"jobs/j1/evaluation/report.json", "jobs/j1/evaluation/report.html"}
    assert report <= set(s3_job.evaluated_keys)


def test_a_job_name_taken_in_s3_is_refused_before_training(s3_job: S3Job) -> None:
    assert s3_job.again.returncode == 2 and "already exists" in s3_job.again.stderr


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
    done = aws.cli(
        tmp_path / "cache",
        "prepare",
        "--input",
        f"{s3_bucket_uri}/reviews/full",
        "--output",
        out,
        "--policy",
        "stars",
        "--master",
        "local[1]",
    )
    assert done.returncode == 0, done.stderr
    keys = aws.keys(s3_bucket_uri)
    for name in ("train.txt", "validation.txt", "test.txt", "manifest.json"):
        assert f"prepared/{name}" in keys
    manifest = open_bucket(out).read_json("manifest.json")
    assert manifest["rows_read"] == 600 and manifest["policy"] == "stars"
    assert open_bucket(out).read_bytes("train.txt").startswith(b"__label__")
    missing = aws.cli(
        tmp_path / "cache",
        "prepare",
        "--input",
        f"{s3_bucket_uri}/nothing/here.csv",
        "--output",
        f"{s3_bucket_uri}/p2",
    )
    assert missing.returncode == 3, missing.stderr
    assert not [k for k in aws.keys(s3_bucket_uri) if k.startswith("p2/")]


def test_serve_a_model_from_s3(
    s3_model: Path, tmp_path: Path, s3_bucket_uri: str, aws: Aws
) -> None:
    import httpx

    from conftest import start_endpoint

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
    done = run_cli(
        "run", "--input", str(POLARITY), "--output", "s3://b/x", cwd=tmp_path, timeout=60
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
    failed = aws.cli(
        tmp_path / "cache",
        "--bucket",
        jobs,
        "train",
        "--train",
        f"{s3_bucket_uri}/in/train.txt",
        "--job-name",
        "f1",
        "--hp",
        "threads=1",
    )
    assert failed.returncode == 4, failed.stderr
    assert [k for k in aws.keys(s3_bucket_uri) if k.startswith("jobs/")] == ["jobs/f1/job.json"]
    record = open_bucket(jobs).read_json("f1/job.json")
    assert record["status"] == "Failed" and "no labels" in record["failure_reason"]
    assert record["inputs"]["train"]["path"] == f"{s3_bucket_uri}/in/train.txt"
