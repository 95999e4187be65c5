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

Every published model is pinned in the folder (`models/`: a hard link to the loaded .bin and
its sidecar, a copy across file systems), so a replacement worker loads what its siblings
serve even when the file it came from was moved or deleted since (issue 14: a replacement that
could not load the swapped-to archive used to stop the endpoint). The folder names its owner
(`owner.pid`): the next endpoint to start removes the folders of owners that died without
cleaning up (`kill -9`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiment import layout
from sentiment.files import atomic_path
from sentiment.records import alive

STATE = "model.json"
METRICS = "metrics-{}.json"  # one per worker slot
PINNED = "models"
OWNER = "owner.pid"
ERROR = "error.json"  # why a worker could not start: {"exit_code": n, "message": "..."}
PREFIX = "sentiment-serve-"


@dataclass
class Peers:
    folder: Path  # holds STATE: {"generation": n, "ref": "...", "path": "<pinned .bin>"}
    generation: Any  # multiprocessing.Value("q"): the latest published generation
    applied: Any  # multiprocessing.Array("q", workers): the generation each worker serves
    serving: Any  # multiprocessing.Value("b"): 1 once any worker served (restarts are not fatal)
    index: int = 0  # this worker's slot

    @classmethod
    def create(cls, context: Any, workers: int) -> Peers:
        """A new shared folder (in the system's temporary folder) owned by this process, after
        removing the folders of dead owners."""
        remove_leftovers()
        folder = Path(tempfile.mkdtemp(prefix=PREFIX))
        with atomic_path(folder / OWNER) as tmp:
            tmp.write_text(str(os.getpid()))
        return cls(
            folder, context.Value("q", 0), context.Array("q", workers), context.Value("b", 0)
        )

    def for_worker(self, index: int) -> Peers:
        return Peers(self.folder, self.generation, self.applied, self.serving, index)

    @property
    def workers(self) -> int:
        return len(self.applied)

    def start(self, ref: str, path: Path) -> None:
        """Generation 0: the model the endpoint starts with (`path`: its .bin)."""
        self._write_state(0, ref, self.pin(path))

    def publish(self, ref: str, path: Path) -> int:
        """Name `ref` (loaded from the .bin `path`) as the model every worker must serve;
        returns its generation."""
        pinned = self.pin(path)  # outside the lock: a copy may take a while
        with self.generation.get_lock():
            generation = int(self.generation.value) + 1
            previous = json.loads((self.folder / STATE).read_text())["path"]
            self._write_state(generation, ref, pinned)
            self.generation.value = generation
        keep = {Path(pinned).parent.name, Path(previous).parent.name}
        for old in (self.folder / PINNED).iterdir():  # a replacement may still load `previous`
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
        return generation

    def _write_state(self, generation: int, ref: str, pinned: str) -> None:
        with atomic_path(self.folder / STATE) as tmp:
            tmp.write_text(json.dumps({"generation": generation, "ref": ref, "path": pinned}))

    def pin(self, path: Path) -> str:
        """A copy of the model file `path` (and its preprocessing sidecar) that lives as long as
        the endpoint: a hard link (instant, no space), else a copy."""
        target = self.folder / PINNED / uuid.uuid4().hex
        tmp = target.with_name(f".tmp-{target.name}")
        tmp.mkdir(parents=True)
        for source in (path, path.parent / layout.PREPROCESSING):
            if source == path or source.is_file():
                name = layout.MODEL_BIN if source == path else source.name
                try:
                    os.link(source, tmp / name)
                except OSError:  # another file system, or links not allowed
                    shutil.copyfile(source, tmp / name)
        os.replace(tmp, target)
        return str(target / layout.MODEL_BIN)

    def latest(self) -> tuple[int, str, str]:
        """(generation, model ref, pinned .bin) last published (generation 0: the first)."""
        with self.generation.get_lock():  # the file and the counter agree under the lock
            state = json.loads((self.folder / STATE).read_text())
        return int(state["generation"]), str(state["ref"]), str(state["path"])

    def mark_serving(self) -> None:
        self.serving.value = 1

    def report_error(self, exit_code: int, message: str) -> None:
        """Why this worker could not start (the supervisor shows it if the endpoint stops)."""
        with atomic_path(self.folder / ERROR) as tmp:
            tmp.write_text(json.dumps({"exit_code": exit_code, "message": message}))

    def last_error(self) -> tuple[int, str] | None:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            data = json.loads((self.folder / ERROR).read_text())
            return int(data["exit_code"]), str(data["message"])
        return None

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


def remove_leftovers(root: Path | None = None) -> list[Path]:
    """Remove the shared folders of endpoints whose owner process is dead (killed before it
    could clean up); returns them. A folder whose owner is unknown or alive is left alone."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue
        if not alive(owner):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
