"""Run every stage's benchmark, one after another: `python -m benchmarks [stage ...] [options]`.

Each benchmark measures its stage and its named baseline in the same run and prints the ratios.
The stages named come first; everything from the first option on is passed to each of them
(`python -m benchmarks soak --duration 60 --connections 16`). With no stage named, the STAGES
run; the soak (5 minutes of load while workers die and models swap) runs only when named.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

STAGES = ("prepare", "train", "serve", "api", "predict")
ON_REQUEST = ("soak", "tune", "text_rules")


def main(argv: list[str]) -> int:
    stages = list(itertools.takewhile(lambda a: not a.startswith("-"), argv))
    flags = argv[len(stages) :]
    unknown = set(stages) - set(STAGES + ON_REQUEST)
    if unknown:
        print(
            f"Error: unknown benchmark(s) {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(STAGES + ON_REQUEST)}."
        )
        return 2
    failed = []
    for stage in stages or STAGES:
        print(f"\n=== benchmarks.{stage} {' '.join(flags)}", flush=True)
        if subprocess.call([sys.executable, "-m", f"benchmarks.{stage}", *flags]) != 0:
            failed.append(stage)
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
