"""The public API on AWS Lambda, behind API Gateway (REST API v1 or HTTP API v2 proxy events).

Handler: `sentiment.api.aws_lambda.handler`. It is the same app as `sentiment api` (POST
/sentiment, GET /healthz, the web page at /), configured by the same SENTIMENT_* settings from
the function's environment: SENTIMENT_ENDPOINT_URL for an endpoint behind a URL (ours), or
SENTIMENT_SAGEMAKER_ENDPOINT (+ AWS_REGION, set by Lambda) for a SageMaker endpoint, called
with InvokeEndpoint under the function's role. Mangum translates API Gateway's events to ASGI
and the app's answers back. See docs/aws-lambda.md for the deployment.
"""

from __future__ import annotations

from typing import Any

from sentiment.config import Settings

_adapter: Any = None


def build_handler(settings: Settings | None = None) -> Any:
    """A Mangum adapter around the API app for `settings` (default: the environment's)."""
    from mangum import Mangum

    from sentiment.api.app import create_app
    from sentiment.api.server import make_predictor

    settings = settings or Settings.load()
    app = create_app(settings, make_predictor(settings, None))
    # lifespan "off": the app's shutdown closes the predictor's client, and Mangum would run
    # it after every invocation; with it off, a warm function keeps its connection to the
    # endpoint across invocations (Mangum keeps one event loop for the process's life).
    return Mangum(app, lifespan="off")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """AWS Lambda's entry point: the app is built on the first invocation and then reused."""
    global _adapter
    if _adapter is None:
        _adapter = build_handler()
    answer: dict[str, Any] = _adapter(event, context)
    return answer
