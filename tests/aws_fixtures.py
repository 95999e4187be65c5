"""AWS in the tests: moto's server mode, a real S3 and SageMaker API speaking HTTP on 127.0.0.1.

No AWS account is reachable from the tests. moto implements the APIs' requests and answers (the
real AWS SDK, boto3, signs and sends them over HTTP); it stores objects and records resources
but runs no training and hosts no model, which the tests that use its SageMaker say.
tests/conftest.py registers them for every test module (moto starts only when one is used).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import free_port, run_cli

REGION = "us-east-1"
# Fake credentials, only in the tests' environment: boto3 signs with them and moto accepts any.
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class Aws:
    url: str
    env: dict[str, str]

    def client(self, service: str) -> object:
        import boto3

        return boto3.session.Session(region_name=REGION).client(service, endpoint_url=self.url)

    def cli(self, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """`sentiment ARGS` as a child process talking to moto, with its cache in `cache`."""
        return run_cli("--cache-dir", str(cache), *args, env=self.env)

    def keys(self, uri: str) -> list[str]:
        """Every key of the S3 bucket of `uri`, read with plain boto3 (not our storage seam)."""
        name = uri.removeprefix("s3://").split("/", 1)[0]
        answer = self.client("s3").list_objects_v2(Bucket=name)  # type: ignore[attr-defined]
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def new_bucket(self) -> str:
        """A new, empty S3 bucket's URI."""
        name = f"sentiment-test-{uuid.uuid4().hex[:10]}"
        self.client("s3").create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return f"s3://{name}"


@pytest.fixture(scope="session")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aws]:
    """moto's server on a free port of 127.0.0.1, and this process's AWS_* environment pointing
    at it (restored afterwards); `aws.env` is the same environment for child processes."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1.0)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"moto server did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        env = FAKE_ENV | {"AWS_ENDPOINT_URL": url}
        with pytest.MonkeyPatch.context() as mp:
            for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
                mp.delenv(name, raising=False)
            # No ~/.aws of this machine may leak in.
            mp.setenv("AWS_CONFIG_FILE", str(log.parent / "config"))
            mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(log.parent / "credentials"))
            for name, value in env.items():
                mp.setenv(name, value)
            yield Aws(
                url=url,
                env=env
                | {
                    "AWS_CONFIG_FILE": os.environ["AWS_CONFIG_FILE"],
                    "AWS_SHARED_CREDENTIALS_FILE": os.environ["AWS_SHARED_CREDENTIALS_FILE"],
                },
            )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_bucket_uri(aws: Aws) -> str:
    """A fresh, empty S3 bucket in moto (one per test)."""
    return aws.new_bucket()


def upload(aws: Aws, uri: str, source: Path) -> None:
    """Put a local file at an s3:// URI with plain boto3 (not through our storage seam)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    aws.client("s3").upload_file(str(source), bucket, key)  # type: ignore[attr-defined]
