"""The endpoint: `sentiment serve` against its limits and a plain baseline, same run.

`python -m benchmarks.serve [--quick] [--workers N] [--seconds S]` prints:
- in-process predict throughput (texts/s through the one inference path, `Model.predict`:
  normalization, fastText's predict in our C core): the model's limit;
- a raw ASGI echo app on the same server stack (uvicorn, httptools, uvloop, the same worker
  processes: `sentiment.serve.server.run_workers`): the HTTP limit of this machine;
- `sentiment serve` at 32 connections, 1 text and 100 texts per request (requests/s, p50/p99);
- `sentiment serve` with its model call replaced by a constant (1 text): what HTTP, JSON and the
  endpoint's bookkeeping leave for any model;
- the baseline: the fastText library behind a minimal FastAPI handler (1 text / 100 texts);
- the ratios against the targets of issue 6.
Load comes from wrk (Debian's package; `make bench` installs it) on 127.0.0.1, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import httpx

from benchmarks.loadgen import (
    OUT,
    Load,
    benchmark_model,
    free_port,
    instances_body,
    process,
    python,
    review_texts,
    wrk,
)

# The baseline: what one writes first with FastAPI and the fastText library.
BASELINE_APP = """
import os
import fasttext
from fastapi import FastAPI

model = fasttext.load_model(os.environ["BASELINE_MODEL"])
app = FastAPI()


@app.post("/invocations")
def invocations(body: dict) -> list:
    labels, probs = model.predict([t.replace("\\n", " ") for t in body["instances"]], k=1)
    return [{"label": list(l), "prob": [float(x) for x in p]} for l, p in zip(labels, probs)]


@app.get("/ping")
def ping() -> str:
    return ""
"""

# A raw ASGI app: reads the body, answers a fixed JSON; nothing else.
ECHO_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'[{"label":["__label__positive"],"prob":[0.97]}]'})
"""


# The endpoint with the model call replaced by a constant answer: what HTTP, JSON and the
# endpoint's own bookkeeping cost per request (the ceiling any model leaves below).
NO_MODEL_APP = """
import os
from sentiment.config import Settings
from sentiment.model import load_model
from sentiment.serve import app as endpoint

model = load_model(os.environ["BENCH_MODEL"])
answer = model.top(["constant"])
endpoint._predict = lambda model, batch, raw: answer * len(batch.texts)
app = endpoint.create_app(Settings.load(), model)
"""


def on_our_stack(app: str, port: int, workers: int) -> list[str]:
    """A command serving the ASGI app `app` ("module:attr" in OUT) exactly as `sentiment serve`
    serves the endpoint: its uvicorn options and its worker processes (one SO_REUSEPORT socket
    each), so the echo and the endpoint differ only by the app."""
    code = (
        "from sentiment.http_common import server_options\n"
        "from sentiment.serve.server import run_workers\n"
        f"options = server_options('127.0.0.1', {port}, 'warning')\n"
        f"raise SystemExit(run_workers({workers}, options, {app!r}))\n"
    )
    return [python(), "-c", code]


def in_process(model_path: str, texts: list[str], seconds: float) -> float:
    from sentiment.model import load_model

    model = load_model(model_path)
    batches = [texts[i : i + 100] for i in range(0, len(texts), 100)]
    model.predict(batches[0])
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for batch in batches:
            model.predict(batch)
            done += len(batch)
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per load run instead of 10 s")
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 10)
    workers = args.workers
    model = str(benchmark_model())
    texts = review_texts(1000)
    one = instances_body(texts[:1])
    hundred = instances_body(texts[:100])
    print(f"cores {os.cpu_count()}, server workers {workers}, load {os.getloadavg()}", flush=True)
    print(f"model {model}; 1-text body {len(one)} B, 100-text body {len(hundred):,} B\n")

    texts_per_sec = in_process(model, texts, seconds)
    print(f"in-process predict:   {texts_per_sec:9,.0f} texts/s (batches of 100)", flush=True)

    apps = OUT
    apps.mkdir(parents=True, exist_ok=True)
    (apps / "echo_app.py").write_text(ECHO_APP)
    (apps / "baseline_app.py").write_text(BASELINE_APP)
    (apps / "no_model_app.py").write_text(NO_MODEL_APP)
    uvicorn = [python(), "-m", "uvicorn", "--no-access-log", "--log-level", "warning",
               "--http", "httptools", "--loop", "uvloop", "--app-dir", str(apps)]  # fmt: skip
    results: dict[str, Load] = {}
    apps_env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(apps), os.environ.get("PYTHONPATH")]))
    }

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process(on_our_stack("echo_app:app", port, workers), f"{url}/", env=apps_env):
        results["echo"] = wrk(f"{url}/invocations", one, seconds=seconds)
    print(f"raw ASGI echo:        {results['echo'].line()}", flush=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [python(), "-m", "sentiment", "serve", "--model", model, "--port", str(port),
             "--workers", str(workers)]  # fmt: skip
    with process(serve, f"{url}/ping", env={"SENTIMENT_LOG_LEVEL": "warning"}):
        check = httpx.post(
            f"{url}/invocations", content=one, headers={"content-type": "application/json"}
        )
        assert check.status_code == 200 and json.loads(check.content)[0]["label"], check.text
        results["ours-1"] = wrk(f"{url}/invocations", one, seconds=seconds)
        print(f"endpoint, 1 text:     {results['ours-1'].line()}", flush=True)
        results["ours-100"] = wrk(f"{url}/invocations", hundred, seconds=seconds)
        print(f"endpoint, 100 texts:  {results['ours-100'].line()}", flush=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    no_model = on_our_stack("no_model_app:app", port, workers)
    with process(no_model, f"{url}/ping", env=apps_env | {"BENCH_MODEL": model}):
        results["no-model-1"] = wrk(f"{url}/invocations", one, seconds=seconds)
        print(f"endpoint, no model:   {results['no-model-1'].line()}", flush=True)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    baseline = [*uvicorn, "baseline_app:app", "--port", str(port)]
    with process(baseline, f"{url}/ping", env={"BASELINE_MODEL": model}):
        results["base-1"] = wrk(f"{url}/invocations", one, seconds=seconds)
        print(f"baseline, 1 text:     {results['base-1'].line()}", flush=True)
        results["base-100"] = wrk(f"{url}/invocations", hundred, seconds=seconds)
        print(f"baseline, 100 texts:  {results['base-100'].line()}", flush=True)

    o1, o100, b1, echo = results["ours-1"], results["ours-100"], results["base-1"], results["echo"]
    print("\nratios (targets of issue 6):")
    print(
        f"  1 text: endpoint / baseline req/s   = {o1.requests_per_sec / b1.requests_per_sec:5.2f}x (target >= 2x)"
    )
    print(f"  1 text: endpoint p99                = {o1.p99_ms:5.2f} ms (target <= 10 ms)")
    print(
        f"  1 text: endpoint / raw echo req/s   = {o1.requests_per_sec / echo.requests_per_sec:5.2f}x (target >= 0.5x)"
    )
    print(
        f"  1 text: endpoint without the model / raw echo = "
        f"{results['no-model-1'].requests_per_sec / echo.requests_per_sec:5.2f}x (the protocol's ceiling)"
    )
    print(
        f"  100 texts: endpoint texts/s / in-process = "
        f"{100 * o100.requests_per_sec / texts_per_sec:5.2f}x (target >= 0.8x); "
        f"baseline {100 * results['base-100'].requests_per_sec / texts_per_sec:.2f}x"
    )
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
