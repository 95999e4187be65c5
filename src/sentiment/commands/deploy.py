"""`sentiment deploy`: host a model on a SageMaker endpoint (create, update in place, delete)."""

from __future__ import annotations

import click

from sentiment.commands.options import sagemaker_options


@click.command()
@click.option("--endpoint-name", required=True, help="The SageMaker endpoint to create or update.")
@click.option(
    "--model",
    help="s3://.../model.tar.gz, or a training job's name in an s3:// --bucket.",
)
@sagemaker_options(
    "the endpoint's model",
    "ml.m5.large",
    role=" (not needed with --delete)",
    image=" (e.g. this project's endpoint image, pushed to ECR; see docker/)",
)
@click.option("--instance-count", default=1, show_default=True, type=click.IntRange(1))
@click.option("--no-wait", is_flag=True, help="Return once SageMaker accepted the change.")
@click.option("--delete", is_flag=True, help="Delete the endpoint, its config and its models.")
@click.pass_context
def command(
    ctx: click.Context,
    endpoint_name: str,
    model: str | None,
    role: str | None,
    image: str,
    instance_type: str,
    instance_count: int,
    region: str | None,
    no_wait: bool,
    delete: bool,
) -> None:
    """Deploy a model to a SageMaker endpoint and wait until it is InService.

    An existing endpoint is updated in place with a new endpoint config (no downtime).

    Example: sentiment deploy --endpoint-name sentiment --model s3://my-bucket/jobs/blazingtext-2026-11-24-10-00-00/output/model.tar.gz --role arn:aws:iam::123456789012:role/SageMakerExecution
    """
    from rich.console import Console

    from sentiment import layout
    from sentiment.aws import client
    from sentiment.aws import sagemaker as sm
    from sentiment.errors import InputNotFound, UsageError
    from sentiment.storage import is_remote, open_bucket

    console = Console(stderr=True, log_path=False)
    sagemaker = client("sagemaker", region)
    if delete:
        if not sm.delete(sagemaker, endpoint_name, log=console.log):
            raise InputNotFound(f"No SageMaker endpoint {endpoint_name!r}.")
        click.echo(f"deleted {endpoint_name}")
        return
    if not model or not role:
        raise UsageError("Give --model and --role (or --delete).")
    if not is_remote(model):
        bucket = open_bucket(ctx.obj.settings.bucket)
        if not is_remote(bucket.uri):
            raise UsageError(
                f"--model {model} is not in S3: SageMaker hosts a model.tar.gz from S3.",
                hint="Give s3://.../model.tar.gz, or a job name with --bucket s3://...",
            )
        model = bucket.url(layout.model_archive_key(model))
    found = sm.deploy(
        sm.DeploySpec(
            endpoint=endpoint_name,
            model_data=model,
            role=role,
            image=image,
            instance_type=instance_type,
            instance_count=instance_count,
        ),
        client=sagemaker,
        log=console.log,
        wait=not no_wait,
    )
    click.echo(
        f"{endpoint_name} {found.get('EndpointStatus', '?')}: {found.get('EndpointArn', '')}"
    )
