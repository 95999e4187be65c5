"""The worker processes of one endpoint agreeing on the model they serve.

A model swap (`POST /admin/model`) reaches one worker; with several, the others must follow, or
the endpoint would answer from two models at random. The supervisor (`server.run_workers`)
gives every worker the same `Peers`: a generation counter and one slot per worker in shared
memory, and a small file naming the model of the latest generation. The worker that takes the
swap loads the model, swaps it in, publishes it (file, then counter) and waits until every
worker has applied it; each worker watches the counter (a shared integer, read every 0.1 s)
and, when it moves, loads the named model and swaps it in the same way (requests in flight
finish on the model they started with). A replacement worker starts on the latest model.
Each worker also publishes its metric counts there every second, so that a scrape of any
worker shows all of them (`sentiment.serve.metrics`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment.storage import atomic_path

STATE = "model.json"
METRICS = "metrics-{}.json"  # one per worker slot


@dataclass
class Peers:
    folder: Path  # holds STATE: {"generation": n, "ref": "..."}
    generation: Any  # multiprocessing.Value("q"): the latest published generation
    applied: Any  # multiprocessing.Array("q", workers): the generation each worker serves
    index: int = 0  # this worker's slot

    def for_worker(self, index: int) -> Peers:
        return Peers(self.folder, self.generation, self.applied, index)

    @property
    def workers(self) -> int:
        return len(self.applied)

    def publish(self, ref: str) -> int:
        """Name `ref` as the model every worker must serve; returns its generation."""
        with self.generation.get_lock():
            generation = int(self.generation.value) + 1
            with atomic_path(self.folder / STATE) as tmp:
                tmp.write_text(json.dumps({"generation": generation, "ref": ref}))
            self.generation.value = generation
        return generation

    def latest(self) -> tuple[int, str | None]:
        """(generation, model ref) last published; (0, None) before any swap."""
        if int(self.generation.value) == 0:
            return 0, None
        with self.generation.get_lock():  # the file and the counter agree under the lock
            state = json.loads((self.folder / STATE).read_text())
        return int(state["generation"]), str(state["ref"])

    def mark_applied(self, generation: int) -> None:
        self.applied[self.index] = generation

    def mark_failed(self, generation: int) -> None:
        """This worker could not load `generation`'s model (it keeps serving its own)."""
        self.applied[self.index] = -generation

    def wait_applied(self, generation: int, timeout: float) -> int:
        """Until every worker serves `generation` or failed to load it (or `timeout` s); how
        many serve it."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.applied[:]
            done = sum(1 for g in states if g >= generation)
            failed = sum(1 for g in states if g == -generation)
            if done + failed == self.workers or time.monotonic() >= deadline:
                return done
            time.sleep(0.05)

    def publish_metrics(self, snapshot: dict[str, Any]) -> None:
        """This worker's metric counts, for its siblings' scrapes (replaced atomically)."""
        path = self.folder / METRICS.format(self.index)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(snapshot))
        os.replace(tmp, path)

    def sibling_metrics(self) -> list[dict[str, Any]]:
        """The latest published snapshot of every other worker slot."""
        found = []
        for index in range(self.workers):
            if index == self.index:
                continue
            with contextlib.suppress(FileNotFoundError, ValueError):
                found.append(json.loads((self.folder / METRICS.format(index)).read_text()))
        return found
