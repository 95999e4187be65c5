"""`sentiment up`: the model endpoint and the API together."""

from __future__ import annotations

import click


@click.command()
@click.option("--model", required=True, help="Job name, model.tar.gz, folder or fastText .bin.")
@click.option("--serve-port", type=int, help="Endpoint port (default 8080).")
@click.option("--api-port", type=int, help="API and web page port (default 8000).")
@click.pass_context
def command(ctx: click.Context, model: str, serve_port: int | None, api_port: int | None) -> None:
    """Start the endpoint and the API, wait until both are healthy, print the URLs; Ctrl-C stops both.

    Example: sentiment up --model work/blazingtext-2026-11-24-10-00-00/output/model.tar.gz
    """
    from sentiment.api.up import run_stack

    settings = ctx.obj.settings.replace(serve_port=serve_port, api_port=api_port)
    run_stack(model, settings=settings)
