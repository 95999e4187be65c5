"""Run every stage's benchmark, one after another: `python -m benchmarks [stage ...] [--quick]`.

Each benchmark measures its stage and its named baseline in the same run and prints the ratios.
"""

from __future__ import annotations

import subprocess
import sys

STAGES = ("prepare", "train", "serve", "api", "predict")


def main(argv: list[str]) -> int:
    flags = [a for a in argv if a.startswith("-")]
    stages = [a for a in argv if not a.startswith("-")] or list(STAGES)
    unknown = set(stages) - set(STAGES)
    if unknown:
        print(
            f"Error: unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(STAGES)}."
        )
        return 2
    failed = []
    for stage in stages:
        print(f"\n=== benchmarks.{stage} {' '.join(flags)}", flush=True)
        if subprocess.call([sys.executable, "-m", f"benchmarks.{stage}", *flags]) != 0:
            failed.append(stage)
    if failed:
        print(f"\nFailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
