"""The endpoint image's contract with SageMaker (bring your own container).

No container daemon runs here, so the test runs the image's exact entrypoint (the file the
Dockerfile copies and names as ENTRYPOINT, with its CMD and ENV) on this machine, with the
environment SageMaker gives a container and an /opt/ml layout under a temporary root.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import REPO, free_port

DOCKERFILE = REPO / "docker" / "Dockerfile"


def _instruction(name: str) -> list[str]:
    return [m.group(1) for m in re.finditer(rf"^{name}\s+(.+)$", DOCKERFILE.read_text(), re.M)]


def test_dockerfile_wires_the_entrypoint() -> None:
    copies = dict(line.split()[-2:] for line in _instruction("COPY") if line.startswith("docker/"))
    (entrypoint,) = _instruction("ENTRYPOINT")
    assert entrypoint == '["/usr/local/bin/sentiment-entrypoint"]'
    assert copies["docker/entrypoint.sh"] == "/usr/local/bin/sentiment-entrypoint"
    assert _instruction("CMD") == ['["serve"]']
    assert _instruction("EXPOSE") == ["8080"]
    assert os.access(REPO / "docker" / "entrypoint.sh", os.X_OK)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of listening TCP sockets on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_entrypoint_serves_like_a_sagemaker_container(tiny_model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "opt" / "ml"
    # SageMaker unpacks model.tar.gz into /opt/ml/model (model.bin at the archive's root).
    (root / "model").mkdir(parents=True)
    shutil.copy(tiny_model_dir / "model.bin", root / "model" / "model.bin")
    port = free_port()
    image_env = dict(line.split("=", 1) for line in _instruction("ENV"))
    env = {
        **os.environ,
        **image_env,
        "SENTIMENT_CACHE_DIR": str(tmp_path / "cache"),
        "ML_ROOT": str(root),
        # What SageMaker sets in a hosting container.
        "SAGEMAKER_BIND_TO_PORT": str(port),
        "SAGEMAKER_MODEL_SERVER_WORKERS": "1",
        # `python` on PATH is the image's interpreter: here, this test's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    assert set(image_env) == {"SENTIMENT_CACHE_DIR", "PYTHONUNBUFFERED"}
    log = (tmp_path / "container.log").open("wb")
    proc = subprocess.Popen(
        [str(REPO / "docker" / "entrypoint.sh"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import time

        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "container.log").read_text()
            try:
                if httpx.get(f"{url}/ping", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "container.log").read_text()
            time.sleep(0.1)
        # 0.0.0.0, as SageMaker's contract asks (it reaches the container from outside).
        assert _listening_addresses(port) == {"0.0.0.0"}
        # The shell exec'd the server: SageMaker's SIGTERM on stop reaches it, not a shell.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"sentiment" in cmdline and b"serve" in cmdline
        answer = httpx.post(
            f"{url}/invocations",
            json={"instances": ["great product, works well", "awful, broke in a day"]},
            headers={"Accept": "application/json"},
        )
        assert answer.status_code == 200
        labels = [p["label"][0] for p in answer.json()]
        assert labels == ["__label__positive", "__label__negative"]
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        log.close()


def test_entrypoint_refuses_train(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(REPO / "docker" / "entrypoint.sh"), "train"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "serves models" in done.stderr
