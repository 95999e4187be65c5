"""The model the endpoint serves: which reference (`resolve_model_ref`) and its loading
(`load_served_model`), used by the app (at startup, in a worker) and by the server (before
uvicorn starts, so a model that does not load is the CLI's error)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from sentiment.config import Settings
from sentiment.errors import InputNotFound, SentimentError
from sentiment.model import Model, _model_name, load_model, load_model_bin
from sentiment.storage import open_bucket

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


def load_served_model(settings: Settings, pinned: Path | None = None) -> tuple[Model, str]:
    """The model the endpoint serves (settings.model, else SageMaker's folder), logged; from
    `pinned` (its .bin, kept by the endpoint's workers) if given and loadable."""
    ref = resolve_model_ref(settings)
    started = time.perf_counter()
    model = None
    if pinned is not None:
        try:
            model = load_model_bin(pinned, name=_model_name(ref), label_map=settings.label_map)
        except SentimentError as err:
            log.warning("the pinned copy of %s did not load (%s); loading it again", ref, err)
    if model is None:
        model = load_model(
            ref,
            bucket=open_bucket(settings.bucket),
            cache_dir=settings.cache_dir,
            label_map=settings.label_map,
        )
    log.info(
        "loaded model %s (labels: %s) in %.2fs",
        model.name,
        ", ".join(model.classes),
        time.perf_counter() - started,
    )
    return model, str(ref)
