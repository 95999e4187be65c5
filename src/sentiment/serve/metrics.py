"""Prometheus metrics of the endpoint: requests, errors by status, latency, instances, model.

Each worker process keeps its own registry (a scrape reaches one worker); run one worker per
scrape target, or aggregate in Prometheus by the `pid` label every series carries.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from sentiment.model import Model

# `_created` series double the output and nobody graphs them.
disable_created_metrics()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        pid = str(os.getpid())
        self.pid = pid
        self.requests = Counter(
            "sentiment_requests",
            "HTTP requests by route and status.",
            ["route", "status", "pid"],
            registry=self.registry,
        )
        self.errors = Counter(
            "sentiment_errors",
            "Requests answered with 4xx/5xx, by status.",
            ["status", "pid"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sentiment_request_seconds",
            "Request latency by route.",
            ["route", "pid"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self._instances = Histogram(
            "sentiment_instances_per_request",
            "Instances per /invocations request.",
            ["pid"],
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000),
            registry=self.registry,
        )
        self.model = Gauge(
            "sentiment_model_info",
            "The model loaded (1).",
            ["name", "sha256", "labels", "pid"],
            registry=self.registry,
        )
        self.instances = self._instances.labels(pid)

    def model_loaded(self, model: Model, old: Model | None = None) -> None:
        if old is not None:
            self.model.labels(old.name, old.sha256, ",".join(old.classes), self.pid).set(0)
        self.model.labels(model.name, model.sha256, ",".join(model.classes), self.pid).set(1)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def wrap(self, app: Any) -> Any:
        """ASGI middleware recording every HTTP request (pure ASGI: no per-request task)."""
        metrics = self

        async def middleware(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def send_status(message: Any) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                route = scope["path"] if scope["path"] in _ROUTES else "other"
                metrics.requests.labels(route, str(status), metrics.pid).inc()
                if status >= 400:
                    metrics.errors.labels(str(status), metrics.pid).inc()
                metrics.latency.labels(route, metrics.pid).observe(time.perf_counter() - started)

        middleware.state = app.state  # type: ignore[attr-defined]
        return middleware


_ROUTES = {"/ping", "/invocations", "/metrics", "/admin/model", "/"}
