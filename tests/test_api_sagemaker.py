"""`sentiment api --sagemaker-endpoint NAME`: InvokeEndpoint through the AWS SDK.

The control plane (DescribeEndpoint and friends: health, and which image the endpoint runs) is
moto's SageMaker API, where the endpoints are created as `sentiment deploy` creates them; moto
hosts nothing, so InvokeEndpoint goes to our real endpoint processes instead
(AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME), which answer SageMaker's runtime route. A stock BlazingText
container, which does not clean text, is stood in for by `sentiment serve --raw` (instances
taken as pre-tokenized text, as BlazingText takes them).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aws_fixtures import REGION, Aws
from conftest import Process, free_port, start_endpoint
from sentiment.api.sagemaker import SageMakerPredictor, is_blazingtext_image

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
OURS = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sentiment-endpoint:latest"
# Texts whose raw tokens differ from their cleaned ones (case, punctuation glued to words).
TEXTS = ["GREAT product!!! Works PERFECTLY, love it.", "Awful. Broke after 2 days; RETURNED it!"]


@pytest.fixture(scope="module")
def endpoints(aws: Aws) -> dict[str, str]:
    """Two endpoints in moto's SageMaker: 'stock' runs BlazingText's image, 'ours' our image."""
    from sentiment.aws import client
    from sentiment.aws import sagemaker as sm

    control = client("sagemaker", REGION)
    for name, image in (("stock", "blazingtext"), ("ours", OURS)):
        spec = sm.DeploySpec(
            endpoint=name, model_data="s3://b/m/model.tar.gz", role=ROLE, image=image
        )
        sm.deploy(spec, client=control, log=lambda _: None)
    return {"stock": "stock", "ours": "ours"}


@pytest.fixture(scope="module")
def raw_endpoint(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_endpoint(
        tiny_model_dir / "model.bin", tmp_path_factory.mktemp("raw") / "serve.log", "--raw"
    )
    yield url
    process.stop()


def _predictor(runtime_url: str, name: str, **kwargs: Any) -> SageMakerPredictor:
    import boto3

    runtime = boto3.session.Session(region_name=REGION).client(
        "sagemaker-runtime", endpoint_url=runtime_url
    )
    return SageMakerPredictor(name, region=REGION, runtime=runtime, **kwargs)


def _probs(endpoint: str, texts: list[str]) -> list[dict[str, float]]:
    answer = httpx.post(
        f"{endpoint}/invocations", json={"instances": texts, "configuration": {"k": 100}}
    )
    return [
        {lbl.removeprefix("__label__"): p for lbl, p in zip(a["label"], a["prob"], strict=True)}
        for a in answer.json()
    ]


def test_image_detection() -> None:
    assert is_blazingtext_image("811284229777.dkr.ecr.us-east-1.amazonaws.com/blazingtext:1")
    assert is_blazingtext_image(
        "683313688378.dkr.ecr.eu-west-1.amazonaws.com/blazingtext@sha256:ab"
    )
    assert not is_blazingtext_image(OURS)


def test_api_cleans_text_for_a_stock_container(
    aws: Aws, endpoints: dict[str, str], raw_endpoint: str, endpoint: str, tmp_path: Path
) -> None:
    """Against a stock container the API sends the one normalization, so it answers what our
    endpoint (which cleans text itself) answers for the raw text."""
    port = free_port()
    api = Process(
        ["api", "--sagemaker-endpoint", "stock", "--region", REGION, "--port", str(port)],
        tmp_path / "api.log",
        env=aws.env | {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": raw_endpoint},
    )
    try:
        api.wait_for(f"http://127.0.0.1:{port}/healthz")
        health = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert health["endpoint"]["ok"] is True and health["endpoint"]["detail"] == "InService"
        answer = httpx.post(f"http://127.0.0.1:{port}/sentiment", json={"texts": TEXTS})
        assert answer.status_code == 200, answer.text
        results = answer.json()["results"]
        assert [r["sentiment"] for r in results] == ["positive", "negative"]
        expected = _probs(endpoint, TEXTS)
        for result, probs in zip(results, expected, strict=True):
            for label, p in probs.items():
                assert result["label_scores"][label] == pytest.approx(p, abs=1e-5)
        assert answer.json()["model"]
    finally:
        api.stop()


def test_without_cleaning_a_stock_container_sees_raw_text(
    aws: Aws, endpoints: dict[str, str], raw_endpoint: str, endpoint: str
) -> None:
    cleaned = _predictor(raw_endpoint, "stock")
    raw = _predictor(raw_endpoint, "stock", normalize="no")
    with_cleaning = asyncio.run(cleaned.probabilities(TEXTS))
    without = asyncio.run(raw.probabilities(TEXTS))
    assert cleaned.describe()["normalizes"] is True and raw.describe()["normalizes"] is False
    # The raw tokens ("GREAT", "product!!!") are not the model's words: other probabilities.
    assert with_cleaning.classes == without.classes
    assert abs(with_cleaning.rows - without.rows).max() > 0.01


def test_our_image_is_sent_raw_text(aws: Aws, endpoints: dict[str, str], endpoint: str) -> None:
    ours = _predictor(endpoint, "ours")
    got = asyncio.run(ours.probabilities(TEXTS))
    assert ours.describe()["normalizes"] is False
    expected = _probs(endpoint, TEXTS)
    for row, probs in zip(got.rows, expected, strict=True):
        assert dict(zip(got.classes, row, strict=True)) == pytest.approx(probs, abs=1e-5)
    assert asyncio.run(ours.calibrated()).known is None


def test_health_and_errors(aws: Aws, endpoints: dict[str, str], endpoint: str) -> None:
    from sentiment.errors import UpstreamError

    missing = _predictor(endpoint, "nowhere")
    health = asyncio.run(missing.health())
    assert health["ok"] is False and "ValidationException" in health["detail"]
    ours = _predictor(endpoint, "ours")
    # A body over the endpoint's 6 MB (SageMaker's limit too): its 413 comes back as ModelError.
    with pytest.raises(UpstreamError, match=r"model answered an error.*413"):
        asyncio.run(ours.probabilities(["word " * 200] * 7_000))


def test_the_api_calibrates_a_stock_container_by_the_archive_it_hosts(
    aws: Aws,
    endpoints: dict[str, str],
    raw_endpoint: str,
    tiny_model_dir: Path,
    shared_data: Path,
    tmp_path: Path,
) -> None:
    """A stock container answers fastText's scores ("terrible": 1.0). The API reads the
    archive the endpoint hosts (its ModelDataUrl, in S3): `sentiment calibrate`'s fit of
    reported scores and the text rules, and answers what our endpoint would with them."""
    from sentiment.api.predictors import Calibrated
    from sentiment.aws import client
    from sentiment.aws import sagemaker as sm
    from sentiment.calibration import count_words
    from sentiment.model import Preprocessing, load_model
    from sentiment.text import UNRECORDED_CLEANING

    source = tmp_path / "tiny"
    source.mkdir()
    shutil.copy(tiny_model_dir / "model.bin", source / "model.bin")
    recorded = Preprocessing(UNRECORDED_CLEANING, "binary").to_dict()  # the rules it trained with
    (source / "preprocessing.json").write_text(json.dumps(recorded))
    held = tmp_path / "held.csv"
    lines = (shared_data / "amazon_review_polarity" / "test.csv").read_text().splitlines()
    held.write_text("\n".join(lines[:3000]) + "\n")
    archive = f"{aws.new_bucket()}/calibrated/model.tar.gz"
    done = aws.cli(tmp_path / "cache", "calibrate", "--model", str(source),
                   "--validation", str(held), "--output", archive)  # fmt: skip
    assert done.returncode == 0, done.stderr
    spec = sm.DeploySpec(
        endpoint="stock-calibrated", model_data=archive, role=ROLE, image="blazingtext"
    )
    sm.deploy(spec, client=client("sagemaker", REGION), log=lambda _: None)

    texts = [*TEXTS, "terrible", "Great. Awful."]
    predictor = _predictor(raw_endpoint, "stock-calibrated")
    got = asyncio.run(predictor.probabilities(texts))
    assert asyncio.run(predictor.calibrated()) == Calibrated(True, "length")
    found = asyncio.run(predictor.artifacts())
    assert found.source == archive and found.problem is None
    assert predictor.describe()["calibration"] == "length"
    # What our endpoint's model gives with the fit of reported scores, as exactly.
    model = load_model(archive, cache_dir=tmp_path / "cache")
    assert model.calibration is not None
    reported = model.calibration.for_reported()
    assert reported is not None and reported.inputs == "probs"
    names = [label.removeprefix("__label__") for label in model.labels]
    raw = model.predict_proba(texts, raw_scores=True)[:, [names.index(c) for c in got.classes]]
    expected = reported.reordered(got.classes).apply(raw, count_words(texts))
    assert np.allclose(got.rows, expected, rtol=0, atol=1e-9)
    assert raw[2].max() > 0.999 and got.rows[2].max() < 0.99  # "terrible": not 100% any more

    # An archive that cannot be read (the 'stock' endpoint's is not in S3): fastText's scores,
    # reported uncalibrated, and the API still answers.
    plain = _predictor(raw_endpoint, "stock")
    unread = asyncio.run(plain.probabilities(["terrible"]))
    assert unread.rows.max() > 0.999 and asyncio.run(plain.calibrated()) == Calibrated(False)
    assert asyncio.run(plain.artifacts()).problem
    # Through the API process: the page's confidence is the calibrated one.
    port = free_port()
    api = Process(
        [
            "api",
            "--sagemaker-endpoint",
            "stock-calibrated",
            "--region",
            REGION,
            "--port",
            str(port),
        ],
        tmp_path / "api.log",
        env=aws.env | {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": raw_endpoint},
    )
    try:
        api.wait_for(f"http://127.0.0.1:{port}/healthz")
        answer = httpx.post(f"http://127.0.0.1:{port}/sentiment", json={"texts": ["terrible"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model"]["calibrated"] is True
        assert answer.json()["model"]["calibration"] == "length"
        assert answer.json()["results"][0]["confidence"] < 0.99
    finally:
        api.stop()


class _SlowControl:
    """SageMaker's control plane answering after `delay` seconds, then with an error (a fake of
    AWS: moto answers at once). What a slow DescribeEndpoint would do to the first requests."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def describe_endpoint(self, **_: Any) -> dict[str, Any]:
        import time

        from botocore.exceptions import EndpointConnectionError

        time.sleep(self.delay)
        raise EndpointConnectionError(endpoint_url="https://api.sagemaker.invalid")


def test_a_slow_control_plane_does_not_hold_answers(raw_endpoint: str) -> None:
    """The first request waits for the endpoint's description and archive at most the
    endpoint timeout, then answers with the text cleaned (unknown image: cleaned) and the
    scores uncalibrated; the read goes on, and later requests know."""
    import time

    from sentiment.api.predictors import Calibrated

    async def scenario() -> None:
        predictor = _predictor(raw_endpoint, "stock", timeout=0.3, control=_SlowControl(1.0))
        started = time.monotonic()
        first = await predictor.probabilities(TEXTS)
        assert time.monotonic() - started < 0.9  # not the control plane's 1 s
        assert first.rows.shape == (2, 2)
        assert (await predictor.artifacts()).problem  # still reading, within 0.3 s again
        await asyncio.sleep(1.0)
        later = await predictor.artifacts()
        assert later.problem is None and later.calibration is None and later.source is None
        assert await predictor.calibrated() == Calibrated(None)  # unknown: nothing to read
        assert predictor.describe()["normalizes"] is True
        again = await predictor.probabilities(TEXTS)
        assert np.array_equal(again.rows, first.rows)  # cleaned the same way both times

    asyncio.run(scenario())
