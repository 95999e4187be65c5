"""Running the API with uvicorn (the endpoint client or an in-process model behind it)."""

from __future__ import annotations

import logging

import uvicorn

from sentiment.api.app import create_app
from sentiment.api.predictors import EndpointPredictor, LocalPredictor, Predictor
from sentiment.config import Settings
from sentiment.http_common import configure_logging, server_options

log = logging.getLogger("sentiment.api")


def make_predictor(settings: Settings, model_ref: str | None) -> Predictor:
    if model_ref:
        from sentiment.model import load_model
        from sentiment.storage import open_bucket

        model = load_model(
            model_ref,
            bucket=open_bucket(settings.bucket),
            cache_dir=settings.cache_dir,
            label_map=settings.label_map,
        )
        log.info("in-process model %s (labels: %s)", model.name, ", ".join(model.classes))
        return LocalPredictor(model)
    if settings.sagemaker_endpoint:
        from sentiment.api.sagemaker import SageMakerPredictor

        return SageMakerPredictor(
            settings.sagemaker_endpoint,
            region=settings.aws_region or None,
            timeout=settings.endpoint_timeout,
            retries=settings.endpoint_retries,
            normalize=settings.sagemaker_normalize,
            model_data=settings.sagemaker_model_data,
        )
    return EndpointPredictor(
        settings.endpoint_url, timeout=settings.endpoint_timeout, retries=settings.endpoint_retries
    )


def run_api(settings: Settings, model_ref: str | None = None) -> None:
    """Serve the API and web page until SIGTERM/Ctrl-C (graceful)."""
    configure_logging(settings.log_level)
    predictor = make_predictor(settings, model_ref)
    where = (
        f"model {model_ref} in-process"
        if model_ref
        else f"SageMaker endpoint {settings.sagemaker_endpoint}"
        if settings.sagemaker_endpoint
        else f"endpoint {settings.endpoint_url}"
    )
    log.info(
        "sentiment API on http://%s:%d (web page at /, docs at /docs) using %s",
        settings.host,
        settings.api_port,
        where,
    )
    # The endpoint's way of running uvicorn: read deadlines, keep-alive draining on shutdown.
    uvicorn.run(
        create_app(settings, predictor),
        **server_options(settings.host, settings.api_port, settings.log_level, settings),
    )
