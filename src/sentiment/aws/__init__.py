"""Amazon Web Services: S3 storage, SageMaker training and hosting, the Lambda handler's helpers.

Everything here talks to AWS through boto3 (the AWS SDK for Python), imported only when an AWS
feature is used so that local commands do not pay for it. Credentials and region come from the
SDK's standard chain (environment, profiles, instance roles); `AWS_ENDPOINT_URL` (and the
service-specific `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_SAGEMAKER`, ...) point the SDK
elsewhere, as the tests do with moto's server.
"""

from __future__ import annotations

from typing import Any

from sentiment.errors import ConfigError, InputNotFound, Unavailable


def session(region: str | None = None) -> Any:
    """A boto3 session: the standard credential chain, the region from the chain if None."""
    try:
        import boto3
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise ConfigError(
            "AWS support needs boto3.", hint="pip install boto3 (a dependency of sentiment)."
        ) from None
    return boto3.session.Session(region_name=region)


def client(service: str, region: str | None = None, *, config: Any = None) -> Any:
    """A boto3 client for `service` (see `session`; `config` a botocore Config for timeouts,
    retries and pools)."""
    return session(region).client(service, config=config)


def aws_error(err: Exception, what: str) -> Exception:
    """Our error for a failed AWS call: a missing credential or refusal is a config problem, an
    unreachable service is unavailable; the message says which call and what AWS answered."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    if isinstance(err, NoCredentialsError):
        return ConfigError(
            f"{what}: no AWS credentials found.",
            hint="Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role.",
        )
    if isinstance(err, NoRegionError):
        return ConfigError(f"{what}: no AWS region.", hint="Give --region or set AWS_REGION.")
    if isinstance(err, EndpointConnectionError):
        return Unavailable(f"{what}: AWS is unreachable ({err}).")
    if isinstance(err, ClientError):
        info = err.response.get("Error", {})
        if info.get("Code") in {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}:
            return InputNotFound(f"{what}: not found ({info.get('Code')}).")
        message = " ".join(str(info.get("Message") or "").split())[:300]
        return ConfigError(f"{what}: AWS answered {info.get('Code')}: {message}.")
    if isinstance(err, BotoCoreError):
        return Unavailable(f"{what}: {err}.")
    return err
