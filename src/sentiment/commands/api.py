"""`sentiment api`: the public sentiment API and web page."""

from __future__ import annotations

import click

from sentiment.commands.options import label_map_option
from sentiment.labels import LabelMap


@click.command()
@click.option(
    "--endpoint-url",
    help="SageMaker-compatible endpoint to call (default http://127.0.0.1:8080; env SENTIMENT_ENDPOINT_URL).",
)
@click.option(
    "--sagemaker-endpoint",
    help="Call this SageMaker endpoint with InvokeEndpoint instead (the AWS SDK: SigV4, the "
    "standard credential chain; env SENTIMENT_SAGEMAKER_ENDPOINT).",
)
@click.option("--region", help="AWS region of --sagemaker-endpoint (default: the AWS chain).")
@click.option(
    "--sagemaker-normalize",
    type=click.Choice(["auto", "yes", "no"]),
    help="Clean text before InvokeEndpoint: auto (default) when the endpoint runs SageMaker's "
    "BlazingText image, which does not clean text itself.",
)
@click.option(
    "--sagemaker-model-data",
    help="The model.tar.gz (path or s3:// URI) the BlazingText endpoint hosts: its text rules "
    "and calibration are applied here (default: the model's ModelDataUrl; env "
    "SENTIMENT_SAGEMAKER_MODEL_DATA).",
)
@click.option("--model", help="Predict in-process with this model instead of calling an endpoint.")
@click.option("--host", help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8000; env SENTIMENT_API_PORT).")
@click.option(
    "--threshold", type=float, help="Answer 'neutral' below this confidence (default off)."
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    help="Require x-api-key to be one of these (repeatable; env SENTIMENT_API_KEYS).",
)
@click.option(
    "--cors-origin",
    "cors",
    multiple=True,
    help="Allow browser calls from this origin (repeatable; '*' for any).",
)
@label_map_option
@click.pass_context
def command(
    ctx: click.Context,
    endpoint_url: str | None,
    sagemaker_endpoint: str | None,
    region: str | None,
    sagemaker_normalize: str | None,
    sagemaker_model_data: str | None,
    model: str | None,
    host: str | None,
    port: int | None,
    threshold: float | None,
    api_keys: tuple[str, ...],
    cors: tuple[str, ...],
    label_map: LabelMap | None,
) -> None:
    """Serve POST /sentiment, the web page at / and docs at /docs, in front of a model endpoint.

    Example: sentiment api --endpoint-url http://127.0.0.1:8080 --port 8000
    (or: sentiment api --sagemaker-endpoint sentiment --region us-east-1)
    """
    from sentiment.api.server import run_api

    settings = ctx.obj.settings.replace(
        endpoint_url=endpoint_url,
        sagemaker_endpoint=sagemaker_endpoint,
        aws_region=region,
        sagemaker_normalize=sagemaker_normalize,
        sagemaker_model_data=sagemaker_model_data,
        host=host,
        api_port=port,
        neutral_threshold=threshold,
        api_keys=api_keys or None,
        cors_origins=cors or None,
        label_map=label_map,
    )
    run_api(settings, model)
