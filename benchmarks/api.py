"""The public API: the latency it adds over calling the endpoint directly, same run.

`python -m benchmarks.api [--quick] [--seconds S] [--connections C]` starts `sentiment serve`
and `sentiment api --endpoint-url` on 127.0.0.1, then measures with wrk (one connection by
default, so latency is service time, not queueing) POST /invocations on the endpoint and
POST /sentiment on the API with the same texts, 1 and 25 per request, and prints p50/p99 of
both and what the API adds. The API asks our endpoint for the four answers (`"configuration":
{"answers": true}`), so what it adds includes the endpoint computing them (the text's sentences
scored where they can change them). Target (issue 7): <= 1 ms added at p50 for 1 text.
"""

from __future__ import annotations

import argparse
import json
import os

import httpx

from benchmarks.loadgen import (
    benchmark_model,
    free_port,
    instances_body,
    process,
    python,
    review_texts,
    wrk,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 10 s")
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--connections", type=int, default=1)
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 10)
    model = str(benchmark_model())
    texts = review_texts(100)
    print(f"cores {os.cpu_count()}, {args.connections} connection(s), load {os.getloadavg()}")
    serve_port, api_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{serve_port}"
    api = f"http://127.0.0.1:{api_port}"
    quiet = {"SENTIMENT_LOG_LEVEL": "warning"}
    serve = [python(), "-m", "sentiment", "serve", "--model", model, "--port", str(serve_port)]
    api_cmd = [
        python(),
        "-m",
        "sentiment",
        "api",
        "--endpoint-url",
        endpoint,
        "--port",
        str(api_port),
    ]
    with (
        process(serve, f"{endpoint}/ping", env=quiet),
        process(api_cmd, f"{api}/healthz", env=quiet),
    ):
        answer = httpx.post(f"{api}/sentiment", json={"texts": texts[:2]}).json()
        assert len(answer["results"]) == 2 and not answer["errors"], answer
        print(
            f"\n{'':12}{'endpoint p50':>14}{'API p50':>10}{'added':>9}{'endpoint p99':>15}{'API p99':>10}{'added':>9}"
        )
        added_p50_one = 0.0
        for n in (1, 25):
            direct = wrk(f"{endpoint}/invocations", instances_body(texts[:n]),
                         connections=args.connections, seconds=seconds)  # fmt: skip
            through = wrk(f"{api}/sentiment", json.dumps({"texts": texts[:n]}).encode(),
                          connections=args.connections, seconds=seconds)  # fmt: skip
            if direct.errors or through.errors:
                raise SystemExit(
                    f"errors under load: endpoint {direct.errors}, API {through.errors}"
                )
            p50 = through.p50_ms - direct.p50_ms
            p99 = through.p99_ms - direct.p99_ms
            if n == 1:
                added_p50_one = p50
            print(
                f"{n:>3} text{'s' if n > 1 else ' '}   {direct.p50_ms:11.2f} ms{through.p50_ms:7.2f} ms"
                f"{p50:+6.2f} ms{direct.p99_ms:12.2f} ms{through.p99_ms:7.2f} ms{p99:+6.2f} ms",
                flush=True,
            )
    print(f"\nadded at p50 for 1 text: {added_p50_one:.2f} ms (target <= 1 ms)")
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
