"""The SageMaker-compatible endpoint, as a real `sentiment serve` process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fasttext
import httpx
import pytest

from conftest import Process, alive, free_port, served, start_endpoint
from sentiment.model import load_model

# Short texts with emoticons in the spirit of the seed exercise's example payload (its exact
# list is not reproduced here; these are twelve of the same kind).
SEED_PAYLOAD = {
    "instances": [
        "I love this product :)",
        "This is the worst thing I ever bought :(",
        "Great value for the money!!!",
        "meh... it's ok i guess",
        "Absolutely terrible, broke after one day >:(",
        "Best purchase ever <3",
        "Not worth it. Returned it.",
        "works as expected :-)",
        "Would not recommend :-(",
        "Five stars, my kids love it ;)",
        "Cheap plastic, fell apart :/",
        "Amazing!!! :D",
    ]
}
JSON = {"content-type": "application/json"}


def test_ping_and_seed_payload(endpoint: str) -> None:
    ping = httpx.get(f"{endpoint}/ping")
    assert ping.status_code == 200 and ping.content == b""
    response = httpx.post(f"{endpoint}/invocations", json=SEED_PAYLOAD)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert len(body) == 12
    for item in body:
        assert set(item) == {"label", "prob"}
        assert len(item["label"]) == 1 and item["label"][0] in {
            "__label__positive",
            "__label__negative",
        }
        assert 0.0 <= item["prob"][0] <= 1.0
    expected = ["positive", "negative", "positive", "negative", "negative", "positive"]
    expected += ["negative", "positive", "negative", "positive", "negative", "positive"]
    assert [item["label"][0].removeprefix("__label__") for item in body] == expected
    # fastText can return probabilities a hair above 1 (1.00001): the endpoint clips them.
    assert max(item["prob"][0] for item in body) == 1.0


def test_predictions_match_the_inference_path(endpoint: str, tiny_model_dir: Path) -> None:
    """What the endpoint answers is exactly sentiment.model's prediction (normalized text)."""
    texts = SEED_PAYLOAD["instances"]
    model = load_model(tiny_model_dir / "model.bin")
    expected = [p.to_sagemaker() for p in model.predict(texts, k=2)]
    got = httpx.post(
        f"{endpoint}/invocations", json={"instances": texts, "configuration": {"k": 2}}
    ).json()
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g["prob"] == pytest.approx(e["prob"], abs=1e-6)
        assert abs(sum(g["prob"]) - 1.0) < 1e-3


def test_jsonlines(endpoint: str) -> None:
    body = b'{"source": "I love it :)", "k": 2}\n{"source": "awful, broke at once"}\n'
    response = httpx.post(
        f"{endpoint}/invocations", content=body, headers={"content-type": "application/jsonlines"}
    )
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 2 and len(lines[0]["label"]) == 2 and len(lines[1]["label"]) == 1
    assert lines[1]["label"] == ["__label__negative"]


def test_empty_instances_and_large_k(endpoint: str) -> None:
    assert httpx.post(f"{endpoint}/invocations", json={"instances": []}).json() == []
    many = httpx.post(
        f"{endpoint}/invocations", json={"instances": ["ok"], "configuration": {"k": 50}}
    ).json()
    assert sorted(many[0]["label"]) == ["__label__negative", "__label__positive"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "field"),
    [
        (b"{not json", "application/json", 400, "body"),
        (b"[1, 2]", "application/json", 400, "body"),
        (b"{}", "application/json", 400, "instances"),
        (b'{"instances": "text"}', "application/json", 400, "instances"),
        (b'{"instances": ["ok", 3]}', "application/json", 400, "instances[1]"),
        (b'{"instances": [null]}', "application/json", 400, "instances[0]"),
        (
            b'{"instances": ["ok"], "configuration": {"k": 0}}',
            "application/json",
            400,
            "configuration.k",
        ),
        (
            b'{"instances": ["ok"], "configuration": {"k": "2"}}',
            "application/json",
            400,
            "configuration.k",
        ),
        (
            b'{"instances": ["ok"], "configuration": {"k": true}}',
            "application/json",
            400,
            "configuration.k",
        ),
        (b'{"instances": ["ok"], "configuration": 5}', "application/json", 400, "configuration"),
        (b'{"source": "ok"}\nnot json\n', "application/jsonlines", 400, "line 2"),
        (b'{"text": "ok"}\n', "application/jsonlines", 400, "line 1.source"),
        (b'{"source": "ok", "k": -1}\n', "application/jsonlines", 400, "line 1.k"),
        (b"\xff\xfe\x00garbage", "application/json", 400, "body"),
        (b"text", "text/csv", 415, None),
        (b"text", "", 415, None),
    ],
)
def test_bad_requests_are_4xx_json_never_500(
    endpoint: str, body: bytes, content_type: str, status: int, field: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(f"{endpoint}/invocations", content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["message"]
    if field:
        assert error["field"] == field
    if status == 415:
        assert (
            "application/json" in error["message"] and "application/jsonlines" in error["message"]
        )


def test_body_over_6_mb_is_413(endpoint: str) -> None:
    big = json.dumps({"instances": ["x" * 1000] * 6500}).encode()
    assert len(big) > 6 * 1024 * 1024
    response = httpx.post(f"{endpoint}/invocations", content=big, headers=JSON)
    assert response.status_code == 413 and "limit" in response.json()["message"]

    def chunks() -> object:  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 1 << 20):
            yield big[start : start + (1 << 20)]

    response = httpx.post(f"{endpoint}/invocations", content=chunks(), headers=JSON)
    assert response.status_code == 413


def test_metrics(endpoint: str) -> None:
    httpx.post(f"{endpoint}/invocations", json={"instances": ["a", "b", "c"]})
    httpx.post(f"{endpoint}/invocations", content=b"x", headers={"content-type": "text/plain"})
    text = httpx.get(f"{endpoint}/metrics").text
    assert "sentiment_requests_total{pid=" in text and 'route="/invocations",status="200"' in text
    assert "sentiment_errors_total{pid=" in text and 'status="415"' in text
    assert "sentiment_request_seconds_bucket" in text
    assert "sentiment_instances_per_request_bucket" in text
    assert (
        'sentiment_model_info{labels="positive,negative"' in text
        or 'sentiment_model_info{labels="negative,positive"' in text
    )


def test_raw_mode_takes_text_as_it_is(tiny_model_dir: Path, tmp_path: Path) -> None:
    process, url = start_endpoint(tiny_model_dir / "model.bin", tmp_path / "raw.log", "--raw")
    try:
        model = load_model(tiny_model_dir / "model.bin")
        text = "GREAT!!! Loved it"
        got = httpx.post(
            f"{url}/invocations", json={"instances": [text], "configuration": {"k": 2}}
        ).json()[0]
        expected = model.predict([text], k=2, raw=True)[0]
        assert got["prob"] == pytest.approx(list(expected.probs), abs=1e-6)
    finally:
        process.stop()


@pytest.fixture(scope="module")
def second_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another real model: three labels, so answers tell which model served them."""
    folder = tmp_path_factory.mktemp("second")
    lines = (tiny_model_dir / "train.txt").read_text().splitlines()[:3000]
    extra = [f"__label__neutral {' '.join(line.split()[1:])}" for line in lines[:300]]
    (folder / "train.txt").write_text("\n".join(lines + extra) + "\n")
    model = fasttext.train_supervised(
        str(folder / "train.txt"),
        epoch=3,
        lr=0.05,
        dim=8,
        wordNgrams=2,
        seed=2,
        thread=1,
        verbose=0,
    )
    model.save_model(str(folder / "model.bin"))
    return folder / "model.bin"


def test_model_swap_under_load_loses_no_request(
    tiny_model_dir: Path, second_model: Path, tmp_path: Path
) -> None:
    token = "s3cret"
    process, url = start_endpoint(
        tiny_model_dir / "model.bin", tmp_path / "swap.log", env={"SENTIMENT_ADMIN_TOKEN": token}
    )
    try:
        # The admin route is protected.
        assert (
            httpx.post(f"{url}/admin/model", json={"model": str(second_model)}).status_code == 401
        )
        wrong = httpx.post(
            f"{url}/admin/model",
            json={"model": str(second_model)},
            headers={"authorization": "Bearer no"},
        )
        assert wrong.status_code == 403
        bad = httpx.post(
            f"{url}/admin/model",
            json={"model": "/nope.bin"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert bad.status_code == 422 and httpx.get(f"{url}/ping").status_code == 200

        statuses: list[int] = []
        label_counts: list[int] = []
        stop = threading.Event()

        async def hammer() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:

                async def worker() -> None:
                    while not stop.is_set():
                        r = await client.post(
                            "/invocations",
                            json={"instances": ["good stuff", "bad"], "configuration": {"k": 5}},
                        )
                        statuses.append(r.status_code)
                        if r.status_code == 200:
                            label_counts.append(len(r.json()[0]["label"]))

                await asyncio.gather(*(worker() for _ in range(8)))

        thread = threading.Thread(target=lambda: asyncio.run(hammer()))
        thread.start()
        time.sleep(0.5)
        swapped = httpx.post(
            f"{url}/admin/model",
            json={"model": str(second_model)},
            headers={"authorization": f"Bearer {token}"},
            timeout=30,
        )
        time.sleep(0.5)
        stop.set()
        thread.join(timeout=30)
        assert swapped.status_code == 200, swapped.text
        assert sorted(swapped.json()["model"]["labels"]) == ["negative", "neutral", "positive"]
        assert len(statuses) > 50
        assert set(statuses) == {200}, (
            f"failed requests during the swap: {[s for s in statuses if s != 200]}"
        )
        assert label_counts[0] == 2 and label_counts[-1] == 3  # answers switched to the new model
        assert "neutral" in httpx.get(f"{url}/metrics").text
    finally:
        process.stop()


def test_sigterm_finishes_in_flight_requests(tiny_model_dir: Path, tmp_path: Path) -> None:
    process, url = start_endpoint(tiny_model_dir / "model.bin", tmp_path / "term.log")
    texts = ["a fairly long review text that goes on " * 15] * 8000
    result: dict[str, object] = {}

    def call() -> None:
        result["response"] = httpx.post(f"{url}/invocations", json={"instances": texts}, timeout=60)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.3)  # the request is in flight (predicting 8,000 texts)
    process.proc.send_signal(signal.SIGTERM)
    thread.join(timeout=60)
    code = process.proc.wait(timeout=30)  # exits by itself after the graceful shutdown
    process.stop()
    response = result["response"]
    assert isinstance(response, httpx.Response) and response.status_code == 200
    assert len(response.json()) == 8000
    # uvicorn re-raises the signal once it has shut down gracefully: "terminated by SIGTERM".
    assert code in (0, -signal.SIGTERM)
    assert "Finished server process" in process.output()
    log = process.output()
    assert (
        "loaded model" in log
        and "labels: " in log
        and f"http://127.0.0.1:{url.rsplit(':', 1)[1]}" in log
    )


def test_container_mode_reads_opt_ml_model_and_sagemaker_port(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """In a SageMaker container: no --model, the model in /opt/ml/model, the port from SAGEMAKER_BIND_TO_PORT."""
    port = free_port()
    process = Process(
        ["serve"],
        tmp_path / "container.log",
        env={
            "SAGEMAKER_BIND_TO_PORT": str(port),
            "SENTIMENT_SAGEMAKER_MODEL_DIR": str(tiny_model_dir),
        },
    )
    try:
        process.wait_for(f"http://127.0.0.1:{port}/ping")
        answer = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"instances": ["great"]})
        assert answer.status_code == 200
    finally:
        process.stop()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    process = Process(
        ["serve"],
        tmp_path / "none.log",
        env={"SENTIMENT_SAGEMAKER_MODEL_DIR": str(tmp_path / "absent")},
    )
    code = process.proc.wait(timeout=60)
    process.stop()
    assert code == 3
    assert "Error: No model to serve." in process.output() and "Traceback" not in process.output()


def test_other_methods_on_invocations_are_405_json(endpoint: str) -> None:
    response = httpx.get(f"{endpoint}/invocations")
    assert response.status_code == 405 and response.json()["error"] == "http_error"
    # The error answers the API shares (sentiment.http_common) keep the exception's headers.
    assert response.headers["allow"] == "POST"
    assert httpx.post(f"{endpoint}/nowhere", json={}).status_code == 404


def test_metrics_histograms_count_like_prometheus() -> None:
    """Our plain-number histograms expose what prometheus_client's would (le is inclusive)."""
    from prometheus_client.parser import text_string_to_metric_families

    from sentiment.serve.metrics import Metrics

    metrics = Metrics()
    for seconds in (0.0004, 0.001, 0.003, 9.0):
        metrics.observe("/invocations", 200, seconds)
    metrics.observe("/ping", 503, 0.0001)
    for n in (1, 3, 100):
        metrics.instances.observe(n)
    samples = {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "pid"))): s.value
        for family in text_string_to_metric_families(metrics.render()[0].decode())
        for s in family.samples
    }
    route = ("route", "/invocations")
    assert samples[("sentiment_request_seconds_bucket", (("le", "0.0005"), route))] == 1
    assert samples[("sentiment_request_seconds_bucket", (("le", "0.001"), route))] == 2
    assert samples[("sentiment_request_seconds_bucket", (("le", "0.005"), route))] == 3
    assert samples[("sentiment_request_seconds_bucket", (("le", "+Inf"), route))] == 4
    assert samples[("sentiment_request_seconds_count", (route,))] == 4
    assert samples[("sentiment_request_seconds_sum", (route,))] == pytest.approx(9.0044)
    assert samples[("sentiment_requests_total", (("route", "/ping"), ("status", "503")))] == 1
    assert samples[("sentiment_errors_total", (("status", "503"),))] == 1
    assert samples[("sentiment_instances_per_request_bucket", (("le", "1.0"),))] == 1
    assert samples[("sentiment_instances_per_request_bucket", (("le", "5.0"),))] == 2
    assert samples[("sentiment_instances_per_request_bucket", (("le", "100.0"),))] == 3


@dataclass
class Workers:
    """An endpoint of `--workers 2`, taken through its life once: what each step showed."""

    before: dict[int, str]  # pid -> the sha256 it served, over 24 new connections
    counted: dict[str, float]  # pid -> /invocations 200s, from one scrape of /metrics
    swap: httpx.Response
    after: dict[int, str]
    victim: int | None  # the worker killed with SIGKILL
    replaced: dict[int, str]  # the workers serving after it died
    exit_code: int | None  # of the supervisor, after SIGTERM
    survivors: list[int]  # workers still alive after it exited
    output: str


@pytest.fixture(scope="module")
def workers(
    tiny_model_dir: Path, second_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    """The steps record and never assert, so each test below reads its own behaviour even when
    an earlier one went wrong."""
    from prometheus_client.parser import text_string_to_metric_families

    token = "s3cret"
    process, url = start_endpoint(
        tiny_model_dir / "model.bin",
        tmp_path_factory.mktemp("workers") / "w.log",
        "--workers",
        "2",
        env={"SENTIMENT_ADMIN_TOKEN": token},
    )
    try:
        before = served(url, 24)
        for _ in range(20):
            with httpx.Client() as client:
                client.post(f"{url}/invocations", json={"instances": ["ok"]})
        time.sleep(1.5)  # workers publish their counts every second
        counted = {
            s.labels["pid"]: s.value
            for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text)
            for s in family.samples
            if s.name == "sentiment_requests_total"
            and s.labels["route"] == "/invocations"
            and s.labels["status"] == "200"
        }
        swap = httpx.post(
            f"{url}/admin/model",
            json={"model": str(second_model)},
            headers={"authorization": f"Bearer {token}"},
            timeout=120,
        )
        after = served(url, 24)
        victim = next(iter(after), None)
        replaced: dict[int, str] = {}
        if victim is not None:
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(set(replaced) - {victim}) < 2:
                replaced |= served(url, 4)
                time.sleep(0.05)
        process.proc.send_signal(signal.SIGTERM)
        try:
            exit_code: int | None = process.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            exit_code = None
        yield Workers(
            before,
            counted,
            swap,
            after,
            victim,
            replaced,
            exit_code,
            [pid for pid in replaced if pid != victim and alive(pid)],
            process.output(),
        )
    finally:
        process.stop()


def test_new_connections_spread_over_the_workers(workers: Workers) -> None:
    """Each worker listens on its own SO_REUSEPORT socket (uvicorn's shared socket let one
    worker take a whole burst)."""
    assert len(workers.before) == 2, workers.output


def test_one_scrape_counts_every_workers_requests(workers: Workers) -> None:
    assert set(workers.counted) == {str(pid) for pid in workers.before}
    assert sum(workers.counted.values()) == 20


def test_a_swap_reaches_every_worker_before_it_is_answered(workers: Workers) -> None:
    assert workers.swap.status_code == 200, workers.swap.text
    assert workers.swap.json()["workers"] == {"swapped": 2, "of": 2}
    new_sha = workers.swap.json()["model"]["sha256"]
    assert new_sha not in workers.before.values()
    assert set(workers.after) == set(workers.before)
    assert set(workers.after.values()) == {new_sha}


def test_a_dead_worker_is_replaced_on_the_swapped_model(workers: Workers) -> None:
    assert len(set(workers.replaced) - {workers.victim}) == 2, workers.output
    assert workers.victim not in workers.replaced
    # The replacement started on the model its siblings serve: the swap's.
    assert set(workers.replaced.values()) == {workers.swap.json()["model"]["sha256"]}
    assert "starting another" in workers.output


def test_sigterm_stops_every_worker(workers: Workers) -> None:
    assert workers.exit_code == 0, workers.output
    assert workers.survivors == []


def test_uvicorn_workers_get_every_setting(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uvicorn-workers path (no SO_REUSEPORT) builds each worker's app from the settings
    handed over whole: here the model comes from `sagemaker_model_dir`, a setting the server
    once did not pass on (it copied six by name into the environment)."""
    from typing import Any

    from sentiment.config import HANDED_OVER, Settings
    from sentiment.serve.server import app_from_environment

    settings = Settings(sagemaker_model_dir=tiny_model_dir, serve_raw=True, log_level="warning")
    monkeypatch.setenv(HANDED_OVER, settings.dumps())
    app: Any = app_from_environment()

    async def ask() -> tuple[int, httpx.Response]:
        # The ASGI lifespan uvicorn runs in a worker: its startup loads the model.
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        running = asyncio.create_task(app(scope, inbox.get, outbox.put))
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://w") as client:
            ping = await client.get("/ping")
            answer = await client.post("/invocations", json={"instances": ["great value"]})
        await inbox.put({"type": "lifespan.shutdown"})
        await running
        return ping.status_code, answer

    ping, answer = asyncio.run(ask())
    assert ping == 200
    assert answer.status_code == 200, answer.text
