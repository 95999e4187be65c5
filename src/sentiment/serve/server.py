"""Running the endpoint: uvicorn, one or several worker processes, graceful shutdown.

uvicorn finishes in-flight requests on SIGTERM/Ctrl-C before it exits (its graceful shutdown),
which is what SageMaker expects of a container. With several workers, uvicorn starts them from
an import string, so each worker builds its settings from the environment the parent set up
(`SENTIMENT_*`, read by `sentiment.config` as always) and loads the model itself.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import uvicorn

from sentiment.config import Settings
from sentiment.errors import InputNotFound

log = logging.getLogger("sentiment.serve")


def resolve_model_ref(settings: Settings) -> str:
    """settings.model, else SageMaker's /opt/ml/model inside a container."""
    if settings.model:
        return settings.model
    folder = Path(settings.sagemaker_model_dir)
    if folder.is_dir():
        return str(folder)
    raise InputNotFound(
        "No model to serve.",
        hint=f"Give --model (a job name, model.tar.gz, folder or .bin), or put model.bin in {folder}.",
    )


def app_from_environment() -> object:
    """uvicorn factory for worker processes: settings from the environment, model at startup."""
    from sentiment.serve.app import create_app

    settings = Settings.load()
    configure_logging(settings.log_level)
    return create_app(settings)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_server(settings: Settings) -> None:
    """Serve until SIGTERM/Ctrl-C; returns after a graceful shutdown."""
    from sentiment.serve.app import create_app

    ref = resolve_model_ref(settings)
    settings = settings.replace(model=ref)
    configure_logging(settings.log_level)
    log.info(
        "starting endpoint for model %s on http://%s:%d", ref, settings.host, settings.serve_port
    )
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.serve_port,
        "log_level": settings.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "http": "httptools",
        "loop": "uvloop",
    }
    if settings.serve_workers > 1:
        # Passed on to the worker processes, which read their settings as any process does.
        for name, value in {
            "MODEL": ref,
            "BUCKET": settings.bucket,
            "CACHE_DIR": str(settings.cache_dir),
            "SERVE_RAW": "true" if settings.serve_raw else "false",
            "ADMIN_TOKEN": settings.admin_token,
            "LOG_LEVEL": settings.log_level,
        }.items():
            os.environ[f"SENTIMENT_{name}"] = value
        uvicorn.run(
            "sentiment.serve.server:app_from_environment",
            factory=True,
            workers=settings.serve_workers,
            **common,
        )
    else:
        uvicorn.run(create_app(settings), **common)
