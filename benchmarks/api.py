"""The public API: the latency it adds over calling the endpoint directly, same run.

`python -m benchmarks.api [--quick] [--seconds S] [--connections C] [--against SRC [--rounds N]]`
starts `sentiment serve` and `sentiment api --endpoint-url` on 127.0.0.1, then measures with wrk
(one connection by default, so latency is service time, not queueing) POST /invocations on the
endpoint and POST /sentiment on the API with the same texts, 1 and 25 per request, and prints
p50/p99 of both and what the API adds. The API asks our endpoint for the four answers
(`"configuration": {"answers": true}`), so what it adds includes the endpoint computing them (the
text's sentences scored where they can change them). Target (issue 7): <= 1 ms added at p50 for
1 text.

`--against SRC` measures another source tree too (its `src` folder, e.g. a worktree of an
earlier commit with its extensions built: `git worktree add ../old COMMIT`, then `setup.py
build_ext --inplace` there), its endpoint and API started with `PYTHONPATH=SRC`, alternating
with this tree's for `--rounds` rounds (the machine is shared: minutes apart, figures are not
comparable), and prints what each adds at p50, run by run, and the medians' ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import httpx

from benchmarks.loadgen import (
    ROOT,
    benchmark_model,
    free_port,
    instances_body,
    process,
    python,
    review_texts,
    wrk,
)

SIZES = (1, 25)


def measure(
    src: Path, model: str, texts: list[str], seconds: int, connections: int
) -> dict[int, float]:
    """The endpoint and the API of the source tree `src` on this model: prints both, returns
    what the API adds at p50 (ms) per number of texts."""
    serve_port, api_port = free_port(), free_port()
    endpoint = f"http://127.0.0.1:{serve_port}"
    api = f"http://127.0.0.1:{api_port}"
    env = {"SENTIMENT_LOG_LEVEL": "warning", "PYTHONPATH": str(src)}
    serve = [python(), "-m", "sentiment", "serve", "--model", model, "--port", str(serve_port)]
    api_cmd = [python(), "-m", "sentiment", "api", "--endpoint-url", endpoint, "--port", str(api_port)]  # fmt: skip
    added: dict[int, float] = {}
    added_cpu: dict[int, float] = {}
    with (
        process(serve, f"{endpoint}/ping", env=env) as served,
        process(api_cmd, f"{api}/healthz", env=env) as public,
    ):
        answer = httpx.post(f"{api}/sentiment", json={"texts": texts[:2]}).json()
        assert len(answer["results"]) == 2 and not answer["errors"], answer
        print(
            f"\n{src}\n{'':12}{'endpoint p50':>14}{'API p50':>10}{'added':>9}"
            f"{'endpoint p99':>15}{'API p99':>10}{'added':>9}"
        )
        for n in SIZES:
            started = served.cpu_seconds()
            direct = wrk(f"{endpoint}/invocations", instances_body(texts[:n]),
                         connections=connections, seconds=seconds)  # fmt: skip
            direct_cpu = (served.cpu_seconds() - started) / direct.requests
            started = served.cpu_seconds() + public.cpu_seconds()
            through = wrk(f"{api}/sentiment", json.dumps({"texts": texts[:n]}).encode(),
                          connections=connections, seconds=seconds)  # fmt: skip
            through_cpu = (served.cpu_seconds() + public.cpu_seconds() - started) / through.requests
            if direct.errors or through.errors:
                raise SystemExit(
                    f"errors under load: endpoint {direct.errors}, API {through.errors}"
                )
            added[n] = through.p50_ms - direct.p50_ms
            added_cpu[n] = 1000 * (through_cpu - direct_cpu)
            p99 = through.p99_ms - direct.p99_ms
            print(
                f"{n:>3} text{'s' if n > 1 else ' '}   {direct.p50_ms:11.2f} ms{through.p50_ms:7.2f} ms"
                f"{added[n]:+6.2f} ms{direct.p99_ms:12.2f} ms{through.p99_ms:7.2f} ms{p99:+6.2f} ms"
                f"   CPU a request {1000 * direct_cpu:.2f} -> {1000 * through_cpu:.2f} ms",
                flush=True,
            )
    return added, added_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s per run instead of 10 s")
    parser.add_argument("--seconds", type=int, default=None)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--against", type=Path, default=None, help="another tree's src folder")
    parser.add_argument("--rounds", type=int, default=3, help="alternations with --against")
    args = parser.parse_args()
    seconds = args.seconds or (3 if args.quick else 10)
    model = str(benchmark_model())
    texts = review_texts(100)
    print(f"cores {os.cpu_count()}, {args.connections} connection(s), load {os.getloadavg()}")
    ours = ROOT / "src"
    if args.against is None:
        added, cpu = measure(ours, model, texts, seconds, args.connections)
        print(f"\nadded at p50 for 1 text: {added[1]:.2f} ms (target <= 1 ms)")
        print(f"added CPU time a request: {cpu[1]:.2f} ms (1 text), {cpu[25]:.2f} ms (25)")
        print(f"load after: {os.getloadavg()}")
        return
    trees = (ours, args.against.resolve())
    runs: dict[Path, list[tuple[dict[int, float], dict[int, float]]]] = {t: [] for t in trees}
    for round_ in range(args.rounds):
        # Each round in the other order, so that neither tree always runs first.
        for tree in trees if round_ % 2 == 0 else trees[::-1]:
            runs[tree].append(measure(tree, model, texts, seconds, args.connections))
    print(f"\n{args.rounds} rounds alternated; load after {os.getloadavg()}")
    for what, which in (("added at p50", 0), ("added CPU time a request", 1)):
        print(f"{what} (ms):")
        for n in SIZES:
            medians = [statistics.median(run[which][n] for run in runs[tree]) for tree in trees]
            for tree, median in zip(trees, medians, strict=True):
                figures = ", ".join(f"{run[which][n]:.2f}" for run in runs[tree])
                print(f"{n:>3} text(s)  {tree!s:50} {figures}  (median {median:.2f})")
            print(f"{'':13}this tree / the other: {medians[0] / medians[1]:.2f}x")


if __name__ == "__main__":
    main()
