"""SageMaker training jobs and endpoints, against moto's SageMaker API (real boto3 over HTTP).

moto records the resources and answers the API, but it runs no training and hosts no model:
a training job is "Completed" at once with no model.tar.gz written, an endpoint is "InService"
at once with nothing behind it, and moto does not implement UpdateEndpoint at all. So these tests
check what we send to SageMaker and how we follow its answers, not a real training or hosting.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aws_fixtures import REGION, Aws, upload
from conftest import run_cli

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
BLAZINGTEXT_US_EAST_1 = "811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1"


def _cli(args: list[str], aws: Aws, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("--cache-dir", str(tmp_path / "cache"), *args, env=aws.env, timeout=120)


@pytest.fixture
def prepared(s3_bucket_uri: str, aws: Aws, tmp_path: Path) -> str:
    for name in ("train.txt", "validation.txt"):
        path = tmp_path / name
        path.write_text("__label__positive good\n__label__negative bad\n")
        upload(aws, f"{s3_bucket_uri}/prepared/{name}", path)
    return f"{s3_bucket_uri}/prepared"


def test_train_on_sagemaker(prepared: str, s3_bucket_uri: str, aws: Aws, tmp_path: Path) -> None:
    jobs = f"{s3_bucket_uri}/jobs"
    # What SageMaker's instance would log to CloudWatch (moto runs nothing, so the test puts it
    # there): the job streams these lines with its status.
    logs: Any = aws.client("logs")
    group = "/aws/sagemaker/TrainingJobs"
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="sm-1/algo-1-1764547200")
    logs.put_log_events(
        logGroupName=group,
        logStreamName="sm-1/algo-1-1764547200",
        logEvents=[
            {"timestamp": int(time.time() * 1000) + i, "message": m}
            for i, m in enumerate(
                ["##### Alpha: 0.0500  Progress: 100.00%", "#train_accuracy: 0.9123"]
            )
        ],
    )
    done = _cli(
        [
            "--bucket",
            jobs,
            "train",
            "--on",
            "sagemaker",
            "--role",
            ROLE,
            "--input",
            prepared,
            "--job-name",
            "sm-1",
            "--hp",
            "epochs=7",
            "--hp",
            "vector_dim=10",
            "--hp",
            "threads=2",
        ],
        aws,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "status Completed" in done.stderr  # the status, streamed
    assert "#train_accuracy: 0.9123" in done.stderr  # and the job's log lines
    assert f"{jobs}/sm-1/output/model.tar.gz" in done.stdout
    sent: Any = aws.client("sagemaker").describe_training_job(TrainingJobName="sm-1")  # type: ignore[attr-defined]
    assert sent["AlgorithmSpecification"]["TrainingImage"] == BLAZINGTEXT_US_EAST_1
    # BlazingText's names and string values; our extras (threads) are not BlazingText's.
    assert sent["HyperParameters"]["mode"] == "supervised"
    assert sent["HyperParameters"]["epochs"] == "7"
    assert sent["HyperParameters"]["vector_dim"] == "10"
    assert "threads" not in sent["HyperParameters"]
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in sent["InputDataConfig"]
    }
    assert channels == {
        "train": f"{prepared}/train.txt",
        "validation": f"{prepared}/validation.txt",
    }
    assert sent["OutputDataConfig"]["S3OutputPath"] == jobs
    assert sent["RoleArn"] == ROLE
    # Recorded in the bucket like a local job, so `jobs list` shows it.
    listed = _cli(["--bucket", jobs, "jobs", "list"], aws, tmp_path)
    assert listed.returncode == 0 and "sm-1" in listed.stdout and "Completed" in listed.stdout
    described = _cli(["--bucket", jobs, "jobs", "describe", "sm-1", "--json"], aws, tmp_path)
    record = json.loads(described.stdout)
    assert record["sagemaker"]["region"] == REGION
    assert record["model"]["uri"] == f"{jobs}/sm-1/output/model.tar.gz"
    # A taken name is refused before anything is created.
    again = _cli(
        [
            "--bucket",
            jobs,
            "train",
            "--on",
            "sagemaker",
            "--role",
            ROLE,
            "--input",
            prepared,
            "--job-name",
            "sm-1",
        ],
        aws,
        tmp_path,
    )
    assert again.returncode == 2 and "already exists" in again.stderr


def test_train_on_sagemaker_needs_s3_and_a_role(
    prepared: str, s3_bucket_uri: str, aws: Aws, tmp_path: Path
) -> None:
    local = tmp_path / "train.txt"
    local.write_text("__label__positive good\n")
    no_role = _cli(
        ["--bucket", s3_bucket_uri, "train", "--on", "sagemaker", "--input", prepared],
        aws,
        tmp_path,
    )
    assert no_role.returncode == 2 and "--role" in no_role.stderr
    local_channel = _cli(
        [
            "--bucket",
            s3_bucket_uri,
            "train",
            "--on",
            "sagemaker",
            "--role",
            ROLE,
            "--train",
            str(local),
        ],
        aws,
        tmp_path,
    )
    assert local_channel.returncode == 2 and "not an s3:// URI" in local_channel.stderr
    names = aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]  # type: ignore[attr-defined]
    assert not [n for n in names if n["TrainingJobName"].startswith("blazingtext-")]


def test_deploy_update_and_delete(s3_bucket_uri: str, aws: Aws, tmp_path: Path) -> None:
    sagemaker: Any = aws.client("sagemaker")
    model = f"{s3_bucket_uri}/jobs/sm-1/output/model.tar.gz"
    created = _cli(
        ["deploy", "--endpoint-name", "ep-1", "--model", model, "--role", ROLE], aws, tmp_path
    )
    assert created.returncode == 0, created.stderr
    assert "ep-1 InService" in created.stdout
    endpoint = sagemaker.describe_endpoint(EndpointName="ep-1")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.m5.large" and variant["InitialInstanceCount"] == 1
    hosted = sagemaker.describe_model(ModelName=variant["ModelName"])
    assert hosted["PrimaryContainer"]["Image"] == BLAZINGTEXT_US_EAST_1
    assert hosted["PrimaryContainer"]["ModelDataUrl"] == model
    # Our own endpoint image instead, as a job name in an s3:// bucket: an existing endpoint is
    # updated in place with a new config (UpdateEndpoint). moto does not implement
    # UpdateEndpoint, so the call itself fails here; the new model and config were created.
    ours = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sentiment-endpoint:latest"
    updated = _cli(
        [
            "--bucket",
            f"{s3_bucket_uri}/jobs",
            "deploy",
            "--endpoint-name",
            "ep-1",
            "--model",
            "sm-1",
            "--role",
            ROLE,
            "--image",
            ours,
        ],
        aws,
        tmp_path,
    )
    assert "UpdateEndpoint" in updated.stderr, updated.stderr
    assert "updating endpoint ep-1 in place" in updated.stderr
    # (moto's server is shared by the session: other tests' models are there too)
    models = [
        m["ModelName"]
        for m in sagemaker.list_models()["Models"]
        if m["ModelName"].startswith("ep-1-")
    ]
    assert len(models) == 2
    images = {sagemaker.describe_model(ModelName=m)["PrimaryContainer"]["Image"] for m in models}
    assert images == {BLAZINGTEXT_US_EAST_1, ours}
    # --delete removes the endpoint, its config and its model.
    deleted = _cli(["deploy", "--endpoint-name", "ep-1", "--delete"], aws, tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert not [e for e in sagemaker.list_endpoints()["Endpoints"] if e["EndpointName"] == "ep-1"]
    assert variant["ModelName"] not in [m["ModelName"] for m in sagemaker.list_models()["Models"]]
    missing = _cli(["deploy", "--endpoint-name", "ep-1", "--delete"], aws, tmp_path)
    assert missing.returncode == 3
    local = _cli(
        [
            "deploy",
            "--endpoint-name",
            "ep-2",
            "--model",
            str(tmp_path / "m.tar.gz"),
            "--role",
            ROLE,
        ],
        aws,
        tmp_path,
    )
    assert local.returncode == 2 and "S3" in local.stderr
