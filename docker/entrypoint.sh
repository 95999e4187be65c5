#!/bin/sh
# Entrypoint of the endpoint image (docker/Dockerfile), after SageMaker's container contract:
# `serve` listens on 0.0.0.0:8080 (SAGEMAKER_BIND_TO_PORT overrides the port) and serves the
# model SageMaker unpacked under /opt/ml/model; any other command runs as given.
# SAGEMAKER_MODEL_SERVER_WORKERS sets the worker processes (default: one per core; they share
# the model's weights). ML_ROOT stands for /opt/ml where the layout lives elsewhere (a test).
set -eu
ML_ROOT="${ML_ROOT:-/opt/ml}"
if [ "${1:-serve}" = "serve" ]; then
    [ "$#" -gt 0 ] && shift
    exec python -m sentiment serve \
        --model "$ML_ROOT/model" \
        --host 0.0.0.0 \
        --port "${SAGEMAKER_BIND_TO_PORT:-8080}" \
        --workers "${SAGEMAKER_MODEL_SERVER_WORKERS:-$(nproc)}" \
        "$@"
fi
if [ "$1" = "train" ]; then
    echo "This image serves models. Train with SageMaker's BlazingText image" \
         "(sentiment train --on sagemaker) or with sentiment train." >&2
    exit 2
fi
exec "$@"
