"""Prometheus metrics of the endpoint: requests, errors by status, latency, instances, model.

Each worker process keeps its own registry (a scrape reaches one worker); run one worker per
scrape target, or aggregate in Prometheus by the `pid` label every series carries.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from sentiment.model import Model

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
INSTANCE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)


class _Histogram:
    """Bucket counts and a sum, kept as plain numbers (exposed at scrape time)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def add_to(self, family: HistogramMetricFamily, labels: list[str]) -> None:
        cumulative = list(accumulate(self.counts))
        buckets = [(floatToGoString(b), c) for b, c in zip(self.bounds, cumulative, strict=False)]
        family.add_metric(labels, [*buckets, ("+Inf", cumulative[-1])], self.sum)


class Metrics:
    """Counts kept as plain Python numbers on the request path (the endpoint is one event loop
    per process; prometheus_client's locked, per-call label lookups cost ~5 us a request, a
    fifth of a one-text request) and turned into Prometheus families when scraped."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pid = str(os.getpid())
        self._requests: Counter[tuple[str, int]] = Counter()
        self._latency: dict[str, _Histogram] = {}
        self.instances = _Histogram(INSTANCE_BUCKETS)
        self.model = Gauge(
            "sentiment_model_info",
            "The model loaded (1).",
            ["name", "sha256", "labels", "pid"],
            registry=self.registry,
        )
        self.registry.register(self)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one request."""
        self._requests[(route, status)] += 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = _Histogram(LATENCY_BUCKETS)
        latency.observe(seconds)

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "sentiment_requests",
            "HTTP requests by route and status.",
            labels=["pid", "route", "status"],
        )
        errors = CounterMetricFamily(
            "sentiment_errors",
            "Requests answered with 4xx/5xx, by status.",
            labels=["pid", "status"],
        )
        by_status: Counter[int] = Counter()
        for (route, status), n in sorted(self._requests.items()):
            requests.add_metric([self.pid, route, str(status)], n)
            if status >= 400:
                by_status[status] += n
        for status, n in sorted(by_status.items()):
            errors.add_metric([self.pid, str(status)], n)
        latency = HistogramMetricFamily(
            "sentiment_request_seconds", "Request latency by route.", labels=["pid", "route"]
        )
        for route, histogram in sorted(self._latency.items()):
            histogram.add_to(latency, [self.pid, route])
        instances = HistogramMetricFamily(
            "sentiment_instances_per_request", "Instances per /invocations request.", labels=["pid"]
        )
        self.instances.add_to(instances, [self.pid])
        yield from (requests, errors, latency, instances)

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
                metrics.observe(route, status, time.perf_counter() - started)

        middleware.state = app.state  # type: ignore[attr-defined]
        return middleware


_ROUTES = {"/ping", "/invocations", "/metrics", "/admin/model", "/"}
