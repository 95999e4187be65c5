"""Prometheus metrics of the endpoint: requests, errors by status, latency, instances, model.

Every series carries the `pid` of the worker process that counted it. With several workers a
scrape reaches one of them, so each worker also publishes a snapshot of its counts every
second (`sentiment.serve.peers`) and the worker that is scraped adds its siblings' latest
snapshots to its own live counts: one scrape shows every worker (the others' counts at most
a second old), and sums over `pid` are the endpoint's totals.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString
from starlette.types import ASGIApp, Receive, Scope, Send

from sentiment.http_common import StatusSend
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

    def snapshot(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "sum": self.sum}


def _add_histogram(
    family: HistogramMetricFamily, labels: list[str], bounds: tuple[float, ...], data: Any
) -> None:
    cumulative = list(accumulate(data["counts"]))
    buckets = [(floatToGoString(b), c) for b, c in zip(bounds, cumulative, strict=False)]
    family.add_metric(labels, [*buckets, ("+Inf", cumulative[-1])], data["sum"])


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
        self._models: dict[tuple[str, str, str], int] = {}  # (name, sha256, labels) -> 0/1
        self._others: list[dict[str, Any]] = []  # sibling workers' snapshots, for one scrape
        self.registry.register(self)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one request."""
        self._requests[(route, status)] += 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = _Histogram(LATENCY_BUCKETS)
        latency.observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        """This worker's counts as plain data (JSON), what its siblings' scrapes show."""
        return {
            "pid": self.pid,
            "requests": [[route, status, n] for (route, status), n in self._requests.items()],
            "latency": {route: h.snapshot() for route, h in self._latency.items()},
            "instances": self.instances.snapshot(),
            "models": [[*key, value] for key, value in self._models.items()],
        }

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
        latency = HistogramMetricFamily(
            "sentiment_request_seconds", "Request latency by route.", labels=["pid", "route"]
        )
        instances = HistogramMetricFamily(
            "sentiment_instances_per_request", "Instances per /invocations request.", labels=["pid"]
        )
        model = GaugeMetricFamily(
            "sentiment_model_info",
            "The model loaded (1).",
            labels=["name", "sha256", "labels", "pid"],
        )
        for worker in [self.snapshot(), *self._others]:
            pid = str(worker["pid"])
            by_status: Counter[int] = Counter()
            for route, status, n in sorted(worker["requests"]):
                requests.add_metric([pid, route, str(status)], n)
                if status >= 400:
                    by_status[status] += n
            for status, n in sorted(by_status.items()):
                errors.add_metric([pid, str(status)], n)
            for route, data in sorted(worker["latency"].items()):
                _add_histogram(latency, [pid, route], LATENCY_BUCKETS, data)
            _add_histogram(instances, [pid], INSTANCE_BUCKETS, worker["instances"])
            for name, sha256, labels, value in worker["models"]:
                model.add_metric([name, sha256, labels, pid], value)
        yield from (requests, errors, latency, instances, model)

    def model_loaded(self, model: Model, old: Model | None = None) -> None:
        if old is not None:
            self._models[(old.name, old.sha256, ",".join(old.classes))] = 0
        self._models[(model.name, model.sha256, ",".join(model.classes))] = 1

    def render(self, others: list[dict[str, Any]] | None = None) -> tuple[bytes, str]:
        """The exposition: this worker's counts, plus `others` (siblings' snapshots)."""
        self._others = others or []
        try:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        finally:
            self._others = []

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware recording every HTTP request (pure ASGI: no per-request task)."""
        metrics = self

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            send_status = StatusSend(send, 500)
            try:
                await app(scope, receive, send_status)
            finally:
                route = scope["path"] if scope["path"] in _ROUTES else "other"
                metrics.observe(route, send_status.status, time.perf_counter() - started)

        return middleware


_ROUTES = {"/ping", "/invocations", "/metrics", "/admin/model", "/"}
