"""`sentiment serve`: the SageMaker-compatible model endpoint."""

from __future__ import annotations

import click

from sentiment.commands.options import label_map_option
from sentiment.labels import LabelMap


@click.command()
@click.option(
    "--model",
    help="Job name, model.tar.gz, folder or fastText .bin (default: /opt/ml/model, as in SageMaker).",
)
@click.option("--host", help="Address to bind (default 127.0.0.1; env SENTIMENT_HOST).")
@click.option(
    "--port",
    type=int,
    help="Port (default 8080; env SENTIMENT_SERVE_PORT or SAGEMAKER_BIND_TO_PORT).",
)
@click.option(
    "--workers",
    type=int,
    help="Worker processes (default 1). They share the model's weights, follow each other's "
    "model swaps, and any one of them answers /metrics for all.",
)
@click.option(
    "--raw",
    is_flag=True,
    default=None,
    help="Take instances as pre-tokenized text, as BlazingText does.",
)
@label_map_option
@click.pass_context
def command(
    ctx: click.Context,
    model: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    raw: bool | None,
    label_map: LabelMap | None,
) -> None:
    """Serve a model: GET /ping, POST /invocations (application/json, application/jsonlines), /metrics.

    SageMaker's runtime route, POST /endpoints/NAME/invocations, answers AWS SDKs' InvokeEndpoint
    (point the SDK at this server, e.g. AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME). MODEL may be s3://.

    Example: sentiment serve --model work/blazingtext-2026-11-24-10-00-00/output/model.tar.gz --port 8080
    """
    from sentiment.serve import run_server

    settings = ctx.obj.settings.replace(
        model=model,
        host=host,
        serve_port=port,
        serve_workers=workers,
        serve_raw=raw,
        label_map=label_map,
    )
    run_server(settings)
