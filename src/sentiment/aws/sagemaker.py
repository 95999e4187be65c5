"""SageMaker: training jobs (BlazingText's image, our hyperparameter names) and endpoints.

A training job launched here is recorded in the bucket as NAME/job.json, in the shape of a local
job's record, so `sentiment jobs list` shows both; SageMaker writes its model where a local job
writes it (OUTPUT/NAME/output/model.tar.gz), so `--model NAME` finds either.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentiment import layout
from sentiment.errors import ConfigError, JobFailed, Unavailable, UsageError
from sentiment.storage import Bucket, is_remote
from sentiment.train import hyperparams

# SageMaker's BlazingText image registries (account per region), as the SageMaker Python SDK
# lists them (src/sagemaker/image_uri_config/blazingtext.json, version "1").
BLAZINGTEXT_ACCOUNTS = {
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "501404015308",
    "ap-northeast-2": "306986355934",
    "ap-northeast-3": "364406365360",
    "ap-south-1": "991648021394",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "544295431143",
    "ca-central-1": "469771592824",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "813361260812",
    "eu-north-1": "669576153137",
    "eu-west-1": "685385470294",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "eu-south-1": "257386234256",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "811284229777",
    "us-east-2": "825641698319",
    "us-gov-west-1": "226302683700",
    "us-west-1": "632365934929",
    "us-west-2": "433757028032",
}
BLAZINGTEXT = "blazingtext"
TERMINAL_TRAINING = {"Completed", "Failed", "Stopped"}
TERMINAL_ENDPOINT = {"InService", "Failed", "OutOfService"}


def blazingtext_image(region: str) -> str:
    """The BlazingText image URI of `region`."""
    account = BLAZINGTEXT_ACCOUNTS.get(region)
    if account is None:
        raise ConfigError(
            f"SageMaker's BlazingText image is not published in region {region!r}.",
            hint=f"Use one of: {', '.join(sorted(BLAZINGTEXT_ACCOUNTS))}.",
        )
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/blazingtext:1"


def resolve_image(image: str, region: str) -> str:
    """`blazingtext` (the region's BlazingText image) or an image URI as given."""
    return blazingtext_image(region) if image == BLAZINGTEXT else image


def region_of(client: Any) -> str:
    return str(client.meta.region_name)


def _call(what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    from sentiment.aws import aws_error

    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as err:
        raise aws_error(err, f"SageMaker {what}") from None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class TrainingSpec:
    name: str
    train_uri: str
    validation_uri: str | None
    output: Bucket
    hyperparameters: dict[str, Any]
    role: str
    instance_type: str = "ml.c5.xlarge"
    instance_count: int = 1
    volume_gb: int = 30
    max_seconds: int = 24 * 3600
    image: str = BLAZINGTEXT


def training_request(spec: TrainingSpec, region: str) -> dict[str, Any]:
    """The CreateTrainingJob request for `spec` (BlazingText's hyperparameter names, as strings)."""
    for uri in (spec.train_uri, spec.validation_uri, spec.output.uri):
        if uri is not None and not uri.startswith("s3://"):
            raise UsageError(
                f"A SageMaker training job reads and writes S3 only, and {uri} is not an s3:// URI.",
                hint="Upload the prepared files (`sentiment prepare --output s3://...`) and give "
                "--bucket s3://BUCKET/prefix.",
            )
    values = hyperparams.resolve(spec.hyperparameters)

    def channel(name: str, uri: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": uri,
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "text/plain",
            "InputMode": "File",
        }

    channels = [channel("train", spec.train_uri)]
    if spec.validation_uri:
        channels.append(channel("validation", spec.validation_uri))
    return {
        "TrainingJobName": spec.name,
        "AlgorithmSpecification": {
            "TrainingImage": resolve_image(spec.image, region),
            "TrainingInputMode": "File",
        },
        "RoleArn": spec.role,
        # Only BlazingText's own names: our extras (threads, seed, loss) are not BlazingText's.
        "HyperParameters": values.strings(),
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": spec.output.uri},
        "ResourceConfig": {
            "InstanceType": spec.instance_type,
            "InstanceCount": spec.instance_count,
            "VolumeSizeInGB": spec.volume_gb,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.max_seconds},
    }


# Where SageMaker sends a training job's output: one stream per instance, NAME/algo-N-TIME.
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


class LogTail:
    """The new lines of a training job's CloudWatch log streams, each call."""

    def __init__(self, logs: Any, job: str) -> None:
        self.logs = logs
        self.job = job
        self.tokens: dict[str, str] = {}

    def lines(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        out: list[str] = []
        try:
            streams = self.logs.describe_log_streams(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{self.job}/"
            ).get("logStreams", [])
            for stream in sorted(streams, key=lambda s: s["logStreamName"]):
                name = stream["logStreamName"]
                args: dict[str, Any] = {
                    "logGroupName": LOG_GROUP,
                    "logStreamName": name,
                    "startFromHead": True,
                }
                if name in self.tokens:
                    args["nextToken"] = self.tokens[name]
                page = self.logs.get_log_events(**args)
                self.tokens[name] = page["nextForwardToken"]
                out += [event["message"] for event in page.get("events", [])]
        except (ClientError, BotoCoreError):
            return out  # no logs yet (the group appears with the first instance), or no access
        return out


def train(
    spec: TrainingSpec,
    *,
    client: Any,
    log: Callable[[str], None],
    logs: Any = None,
    poll_seconds: float = 15.0,
    wait: bool = True,
) -> dict[str, Any]:
    """Launch the training job, record it in the output bucket, stream its status (and, with a
    CloudWatch Logs client, its log lines: BlazingText's metrics) until it ends (unless `wait`
    is False); returns the record (Failed/Stopped raise JobFailed after recording)."""
    region = region_of(client)
    request = training_request(spec, region)
    # Imported here: the training code (numpy, the model) costs `sentiment deploy` 0.1-0.3 s.
    from sentiment.train.job import refuse_taken_name

    refuse_taken_name(spec.output, spec.name)
    answer = _call("CreateTrainingJob", client.create_training_job, **request)
    record: dict[str, Any] = {
        "name": spec.name,
        "status": "InProgress",
        "failure_reason": None,
        "created": _now(),
        "started": _now(),
        "ended": None,
        "seconds": None,
        "algorithm": "SageMaker BlazingText (supervised)"
        if spec.image == BLAZINGTEXT
        else f"SageMaker image {spec.image}",
        "hyperparameters": request["HyperParameters"],
        "inputs": {
            c["ChannelName"]: {"path": c["DataSource"]["S3DataSource"]["S3Uri"]}
            for c in request["InputDataConfig"]
        },
        "epochs": [],
        "final_metrics": {"train_accuracy": None, "validation_accuracy": None},
        "sagemaker": {
            "training_job_arn": answer["TrainingJobArn"],
            "region": region,
            "image": request["AlgorithmSpecification"]["TrainingImage"],
            "instance_type": spec.instance_type,
            "instance_count": spec.instance_count,
        },
    }
    key = layout.job_record_key(spec.name)
    spec.output.write_json(key, record)
    log(f"SageMaker training job {spec.name} created ({answer['TrainingJobArn']})")
    if not wait:
        return record
    started = time.monotonic()
    seen = 0
    status = ""
    tail = LogTail(logs, spec.name) if logs is not None else None
    while True:
        job = _call("DescribeTrainingJob", client.describe_training_job, TrainingJobName=spec.name)
        for line in tail.lines() if tail else []:
            log(line)
        for step in job.get("SecondaryStatusTransitions", [])[seen:]:
            log(f"{step.get('Status')}: {step.get('StatusMessage', '')}".rstrip(": "))
        seen = len(job.get("SecondaryStatusTransitions", []))
        if job["TrainingJobStatus"] != status:
            status = job["TrainingJobStatus"]
            log(f"status {status}")
        if status in TERMINAL_TRAINING:
            break
        time.sleep(poll_seconds)
    metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    record.update(
        status=status,
        failure_reason=job.get("FailureReason"),
        ended=_now(),
        seconds=round(time.monotonic() - started, 3),
        final_metrics={
            "train_accuracy": metrics.get("train:accuracy"),
            "validation_accuracy": metrics.get("validation:accuracy"),
        },
    )
    if status == "Completed":
        artifact = job.get("ModelArtifacts", {}).get("S3ModelArtifacts", "")
        record["model"] = {"key": layout.model_archive_key(spec.name), "uri": artifact}
    spec.output.write_json(key, record)
    if status != "Completed":
        raise JobFailed(f"SageMaker training job {spec.name} {status}: {job.get('FailureReason')}")
    return record


# ---------------------------------------------------------------------------------------------
# Hosting


@dataclass(frozen=True)
class DeploySpec:
    endpoint: str
    model_data: str
    role: str
    image: str = BLAZINGTEXT
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    environment: tuple[tuple[str, str], ...] = ()


def deploy(
    spec: DeploySpec,
    *,
    client: Any,
    log: Callable[[str], None],
    wait: bool = True,
    poll_seconds: float = 15.0,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Create a Model and an EndpointConfig for it, then create the endpoint, or update it in
    place to the new config if it exists (SageMaker shifts traffic without downtime); wait until
    it is InService. Returns DescribeEndpoint's answer."""
    if not is_remote(spec.model_data) or not spec.model_data.startswith("s3://"):
        raise UsageError(
            f"SageMaker hosts a model.tar.gz from S3, and {spec.model_data} is not an s3:// URI.",
            hint="Train with --bucket s3://..., or upload the archive with `aws s3 cp`.",
        )
    region = region_of(client)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-%f")[:-3]
    name = f"{spec.endpoint}-{stamp}"[:63]
    container: dict[str, Any] = {
        "Image": resolve_image(spec.image, region),
        "ModelDataUrl": spec.model_data,
    }
    if spec.environment:
        container["Environment"] = dict(spec.environment)
    _call(
        "CreateModel",
        client.create_model,
        ModelName=name,
        ExecutionRoleArn=spec.role,
        PrimaryContainer=container,
    )
    log(f"model {name} ({container['Image']}, {spec.model_data})")
    _call(
        "CreateEndpointConfig",
        client.create_endpoint_config,
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": spec.instance_count,
                "InstanceType": spec.instance_type,
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    log(f"endpoint config {name}")
    if describe_endpoint(client, spec.endpoint) is None:
        log(f"creating endpoint {spec.endpoint}")
        _call(
            "CreateEndpoint",
            client.create_endpoint,
            EndpointName=spec.endpoint,
            EndpointConfigName=name,
        )
    else:
        log(f"updating endpoint {spec.endpoint} in place to config {name}")
        _call(
            "UpdateEndpoint",
            client.update_endpoint,
            EndpointName=spec.endpoint,
            EndpointConfigName=name,
        )
    if not wait:
        return describe_endpoint(client, spec.endpoint) or {}
    return wait_in_service(
        client, spec.endpoint, log=log, poll_seconds=poll_seconds, timeout=timeout
    )


def describe_endpoint(client: Any, name: str) -> dict[str, Any] | None:
    """DescribeEndpoint's answer, or None when there is no such endpoint."""
    from botocore.exceptions import ClientError

    try:
        return dict(client.describe_endpoint(EndpointName=name))
    except ClientError as err:
        info = err.response.get("Error", {})
        if info.get("Code") == "ValidationException" and "Could not find" in info.get(
            "Message", ""
        ):
            return None
        from sentiment.aws import aws_error

        raise aws_error(err, "SageMaker DescribeEndpoint") from None


def wait_in_service(
    client: Any, name: str, *, log: Callable[[str], None], poll_seconds: float, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    status = ""
    while True:
        found = describe_endpoint(client, name)
        if found is None:
            raise Unavailable(f"SageMaker endpoint {name} disappeared while deploying.")
        if found["EndpointStatus"] != status:
            status = found["EndpointStatus"]
            log(f"endpoint {name}: {status}")
        if status == "InService":
            return found
        if status in TERMINAL_ENDPOINT:
            raise JobFailed(f"SageMaker endpoint {name} is {status}: {found.get('FailureReason')}")
        if time.monotonic() > deadline:
            raise Unavailable(f"SageMaker endpoint {name} not InService after {timeout:.0f}s.")
        time.sleep(poll_seconds)


def delete(client: Any, name: str, *, log: Callable[[str], None]) -> bool:
    """Delete the endpoint, its config and the config's models; False if there was no endpoint."""
    found = describe_endpoint(client, name)
    if found is None:
        return False
    config_name = found["EndpointConfigName"]
    config = _call(
        "DescribeEndpointConfig", client.describe_endpoint_config, EndpointConfigName=config_name
    )
    _call("DeleteEndpoint", client.delete_endpoint, EndpointName=name)
    log(f"deleted endpoint {name}")
    _call("DeleteEndpointConfig", client.delete_endpoint_config, EndpointConfigName=config_name)
    log(f"deleted endpoint config {config_name}")
    for variant in config.get("ProductionVariants", []):
        _call("DeleteModel", client.delete_model, ModelName=variant["ModelName"])
        log(f"deleted model {variant['ModelName']}")
    return True
