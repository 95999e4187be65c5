"""benchmarks/soak's accounting: which errors count against its targets, and its command line.

The soak itself is run by hand (`python -m benchmarks soak --quick`, 30 s); these check, in
milliseconds, the rules that turn its load generator's error events into pass / fail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.__main__ import main as benchmarks_main
from benchmarks.soak import classify, memory_table

REPO = Path(__file__).resolve().parents[1]
KILLED, SURVIVOR = 101, 102


def event(t: float, lane: str, kind: str, pid: int | None, phase: str = "request") -> list:
    return [t, lane, kind, phase, pid, t - 0.001]


def test_errors_on_the_killed_workers_connections_are_the_kills_and_the_rest_are_failures() -> None:
    kills = [{"pid": KILLED, "at": 10.0}]
    errors = [
        event(10.01, "endpoint", "reset", KILLED),  # in flight on the killed worker
        event(10.02, "endpoint", "closed", KILLED),
        event(10.30, "endpoint", "reset", None, phase="probe"),  # queued on its socket
        event(9.99, "endpoint", "reset", KILLED),  # before the kill: a failure
        event(10.05, "endpoint", "reset", SURVIVOR),  # another worker's: a failure
        event(12.00, "endpoint", "reset", None, phase="probe"),  # long after: a failure
        event(10.10, "api", "http_502", None),  # the API must hide a kill: a failure
    ]
    buckets = classify(errors, kills, {"api": 50.0, "endpoint": 50.0})
    assert dict(buckets["killed"]["endpoint"]) == {"reset": 2, "closed": 1}
    assert dict(buckets["failures"]["endpoint"]) == {"reset": 3}
    assert dict(buckets["failures"]["api"]) == {"http_502": 1}


def test_after_its_servers_sigterm_a_refusal_is_expected_and_anything_else_is_cut() -> None:
    errors = [
        event(20.5, "api", "refused", None, phase="connect"),
        event(20.1, "api", "closed", None),
        event(20.2, "endpoint", "reset", SURVIVOR),  # before the endpoint's own SIGTERM
        event(21.1, "endpoint", "closed", SURVIVOR),
        event(21.2, "endpoint", "refused", None, phase="connect"),
    ]
    buckets = classify(errors, [], {"api": 20.0, "endpoint": 21.0})
    assert dict(buckets["refused_after_shutdown"]["api"]) == {"refused": 1}
    assert dict(buckets["refused_after_shutdown"]["endpoint"]) == {"refused": 1}
    assert dict(buckets["cut"]["api"]) == {"closed": 1}
    assert dict(buckets["cut"]["endpoint"]) == {"closed": 1}
    assert dict(buckets["failures"]["endpoint"]) == {"reset": 1}


def test_a_worker_slots_growth_is_its_last_pid_at_the_end_against_its_first_at_the_start() -> None:
    def sample(pid: int, role: str, kb: int) -> dict:
        return {"pid": pid, "role": role, "VmRSS": kb, "RssAnon": kb // 2}

    start = {1: sample(1, "supervisor", 1000), 2: sample(2, "api", 2000)}
    start |= {KILLED: sample(KILLED, "worker", 4000), SURVIVOR: sample(SURVIVOR, "worker", 4000)}
    end = {1: sample(1, "supervisor", 1000), 2: sample(2, "api", 2100)}
    end |= {103: sample(103, "worker", 4200), SURVIVOR: sample(SURVIVOR, "worker", 6000)}
    rows = {r["process"]: r for r in memory_table(start, end, [[KILLED, 103], [SURVIVOR]])}
    assert rows["supervisor"]["growth_pct"] == 0.0
    assert rows["api"]["growth_pct"] == 5.0
    assert rows["worker slot 0"]["growth_pct"] == 5.0
    assert rows["worker slot 1"]["growth_pct"] == 50.0
    gone = memory_table(start, {}, [[KILLED], [SURVIVOR]])
    assert all(r["growth_pct"] is None for r in gone)


def test_the_soak_runs_only_when_named_and_takes_options_with_values() -> None:
    assert benchmarks_main(["nonsense"]) == 2
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "soak", "--duration", "5", "--connections", "4"],
        capture_output=True, text=True, cwd=REPO, check=False, timeout=60,
    )  # fmt: skip
    # Its own argument check answers (a run under 20 s is refused) before anything starts.
    assert "=== benchmarks.soak --duration 5 --connections 4" in done.stdout
    assert "--duration must be >= 20 s" in done.stderr
    assert done.returncode == 1
