"""The SageMaker-compatible model endpoint (`sentiment serve`)."""

from sentiment.serve.app import create_app
from sentiment.serve.loading import resolve_model_ref
from sentiment.serve.server import run_server

__all__ = ["create_app", "resolve_model_ref", "run_server"]
