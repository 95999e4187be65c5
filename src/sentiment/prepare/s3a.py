"""Spark reading and writing S3 itself: Hadoop's s3a connector on Spark's classpath, set up from
the AWS SDK's standard chain (the one the storage seam uses).

pyspark's jars hold Hadoop's client (3.5.0 in pyspark 4.3) but not its S3 connector (hadoop-aws)
nor the AWS SDK that calls. They live on Maven Central, which this project cannot count on
(its machines and CI reach PyPI and Debian only), so `fetch_jars` takes them from PyPI: the
sdist of sagemaker-pyspark 1.4.5 ships hadoop-aws 3.3.1 and aws-java-sdk-bundle 1.11.901,
downloaded once with pip into the cache and checked against their SHA-256. Measured with
pyspark 4.3.0 on moto's S3 (local[2]): hadoop-aws 3.3.1 reads and writes s3a:// on Hadoop 3.5's
client once the durations that Hadoop 3.4+ writes with a unit ("60s"), which 3.3.1 reads as
plain numbers (NumberFormatException: For input string: "60s"), are given as numbers
(`NUMBERS`). The small aws-java-sdk-s3/core/sts 1.12.262 jars of the same sdist are not enough:
hadoop-aws 3.3.1 loads S3Guard's DynamoDB classes (NoClassDefFoundError:
com/amazonaws/services/dynamodbv2/model/AmazonDynamoDBException), which only the bundle has.

On a cluster that has its own s3a (EMR; `spark-submit --packages
org.apache.hadoop:hadoop-aws:VERSION` with the cluster's Hadoop version), set the setting
`spark_s3a_jars` to "none": the cluster's connector, endpoint and credentials are used as they
are. Otherwise the connector is pointed at the SDK's endpoint and region, and given the
credentials of the SDK's standard chain (after Spark started, so that they appear on no
command line).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sentiment.config import Settings
from sentiment.errors import ConfigError, Unavailable
from sentiment.files import atomic_path

PACKAGE = "sagemaker-pyspark==1.4.5"
JAR_FOLDER = "sagemaker_pyspark-1.4.5/deps/jars/"
# The two jars of that sdist, by SHA-256.
JARS = {
    "hadoop-aws-3.3.1.jar": "6be50ad8a8b445d2802381b085b2a3ede5c29d353450a6a21f16b2fefa962b6e",
    "aws-java-sdk-bundle-1.11.901.jar": (
        "b87175b32a16544cc1b37cf40390eb375833e62bed67f8ce6cde4b7ad6429ead"
    ),
}
# Hadoop 3.4+'s defaults for these are durations with a unit; hadoop-aws 3.3.1 reads them as
# numbers (seconds or milliseconds, as below): the same values, as it reads them (a later
# hadoop-aws reads a plain number in the same unit).
NUMBERS = {
    "fs.s3a.threads.keepalivetime": "60",
    "fs.s3a.connection.establish.timeout": "30000",
    "fs.s3a.connection.timeout": "200000",
    "fs.s3a.connection.ttl": "300000",
    "fs.s3a.multipart.purge.age": "86400",
}
AUTO = "auto"
NONE = "none"


def is_local_master(master: str) -> bool:
    """Whether Spark runs in this process (local mode), where the seam can stage S3 files."""
    return master == "local" or master.startswith("local[")


def spark_uri(uri: str) -> str:
    """The URI Spark reads `uri` by: s3:// (and s3n://) go through Hadoop's s3a connector."""
    for scheme in ("s3://", "s3n://"):
        if uri.startswith(scheme):
            return "s3a://" + uri[len(scheme) :]
    return uri


def fetch_jars(cache_dir: Path) -> list[Path]:
    """hadoop-aws and the AWS SDK bundle in `cache_dir/spark-jars/`, fetched from PyPI the
    first time (pip downloads the sdist, ~180 MB; the two jars are kept, ~190 MB)."""
    folder = cache_dir / "spark-jars"
    paths = [folder / name for name in JARS]
    if all(p.is_file() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sdist-", dir=folder) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        done = subprocess.run(
            [*command, "--quiet", "--dest", tmp, PACKAGE], capture_output=True, text=True
        )
        sdists = list(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or not sdists:
            raise Unavailable(
                f"Could not fetch the s3a jars ({PACKAGE} from PyPI): "
                f"{(done.stderr or done.stdout).strip()[-500:]}",
                hint="Check the network to PyPI, or set SENTIMENT_SPARK_S3A_JARS to the paths of "
                "hadoop-aws and its AWS SDK jars (comma-separated), or to none on a cluster "
                "that has s3a.",
            )
        with tarfile.open(sdists[0]) as tar:
            for member in tar:
                name = member.name.removeprefix(JAR_FOLDER)
                if name in JARS and member.name.startswith(JAR_FOLDER):
                    _extract(tar, member, folder / name, JARS[name])
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise Unavailable(f"{PACKAGE} from PyPI lacks {', '.join(missing)}.")
    return paths


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, sha256: str) -> None:
    source = tar.extractfile(member)
    assert source is not None
    digest = hashlib.sha256()
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as out:
            while block := source.read(1 << 20):
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != sha256:
            raise Unavailable(
                f"{target.name} from {PACKAGE} has SHA-256 {digest.hexdigest()}, "
                f"expected {sha256}: refusing it."
            )


def jars(settings: Settings) -> list[str]:
    """The jars to put on Spark's classpath for s3a: the fetched pair ("auto"), none ("none":
    the cluster has them), or the comma-separated paths of the setting."""
    value = settings.spark_s3a_jars.strip()
    if value == AUTO:
        return [str(p) for p in fetch_jars(settings.cache_dir)]
    if value == NONE:
        return []
    paths = [p.strip() for p in value.split(",") if p.strip()]
    for path in paths:
        if "://" not in path and not Path(path).is_file():
            raise ConfigError(f"SENTIMENT_SPARK_S3A_JARS names {path!r}, which is not a file.")
    return paths


def spark_config(settings: Settings) -> dict[str, str]:
    """Spark settings for s3a:// paths, given before Spark starts (no secrets here: they end
    up on the JVM's command line): the jars, and the connector pointed where boto3 points."""
    if settings.spark_s3a_jars.strip() == NONE:
        return {}
    conf = {"spark.jars": ",".join(jars(settings))}
    conf |= {f"spark.hadoop.{k}": v for k, v in NUMBERS.items()}
    # Check the bucket when a file system is created, in the thread that creates it: that first
    # call also loads the credentials. hadoop-aws 3.3.1's session-credentials provider loads
    # them on first use, marking itself loaded before it is, so that two threads reading at once
    # (Spark checks input paths in parallel) fail with "Provider
    # TemporaryAWSCredentialsProvider has no credentials" (measured, two inputs); a missing
    # bucket is also said at once, not at the first write.
    conf["spark.hadoop.fs.s3a.bucket.probe"] = "2"
    s3 = _session(settings).client("s3")
    endpoint = s3.meta.endpoint_url
    conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
    if s3.meta.region_name:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = s3.meta.region_name
    url = urlparse(endpoint)
    if not (url.hostname or "").endswith(".amazonaws.com"):
        # AWS_ENDPOINT_URL(_S3): another S3 (MinIO, moto, LocalStack) answers at one host, with
        # the bucket in the path rather than in the host name.
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(url.scheme == "https").lower()
    return conf


def set_credentials(spark: Any, settings: Settings) -> None:
    """Give the connector the credentials of the SDK's standard chain (environment, profile,
    SSO, instance role), in the running Spark's Hadoop configuration; without any, s3a keeps
    its own chain. Nothing to do when the cluster brings its own s3a ("none")."""
    if settings.spark_s3a_jars.strip() == NONE:
        return
    found = _session(settings).get_credentials()
    if found is None:
        return
    frozen = found.get_frozen_credentials()
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    hadoop.set("fs.s3a.access.key", frozen.access_key)
    hadoop.set("fs.s3a.secret.key", frozen.secret_key)
    if frozen.token:
        hadoop.set("fs.s3a.session.token", frozen.token)
        provider = "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
    else:
        provider = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    hadoop.set("fs.s3a.aws.credentials.provider", provider)


def _session(settings: Settings) -> Any:
    from sentiment.aws import session

    return session(settings.aws_region or None)


def main() -> None:
    """Fetch the jars into the cache and print their paths (`make spark-jars`; `make test` runs
    it before the tests)."""
    for path in fetch_jars(Settings.load().cache_dir):
        print(path)
