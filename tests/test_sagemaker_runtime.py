"""SageMaker's runtime API on `sentiment serve`: the AWS SDK's InvokeEndpoint, unchanged, with
its endpoint URL pointed at our real endpoint process."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from aws_fixtures import FAKE_ENV, REGION


@pytest.fixture
def runtime(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import boto3

    for name, value in FAKE_ENV.items():  # boto3 signs; our endpoint does not check signatures
        monkeypatch.setenv(name, value)
    return boto3.session.Session(region_name=REGION).client(
        "sagemaker-runtime", endpoint_url=endpoint
    )


def test_invoke_endpoint_json(runtime: Any, endpoint: str) -> None:
    texts = ["Great product, works perfectly. Love it!", "Broke after a day, awful."]
    answer = runtime.invoke_endpoint(
        EndpointName="sentiment",
        Body=json.dumps({"instances": texts, "configuration": {"k": 2}}),
        ContentType="application/json",
        Accept="application/json",
    )
    assert answer["ContentType"] == "application/json"
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["ResponseMetadata"]["RequestId"]
    body = json.loads(answer["Body"].read())
    # The same answer as /invocations.
    direct = httpx.post(
        f"{endpoint}/invocations", json={"instances": texts, "configuration": {"k": 2}}
    ).json()
    assert body == direct
    assert [p["label"][0] for p in body] == ["__label__positive", "__label__negative"]


def test_invoke_endpoint_jsonlines(runtime: Any) -> None:
    lines = "\n".join(json.dumps({"source": t}) for t in ["love it", "hate it, returned it"])
    answer = runtime.invoke_endpoint(
        EndpointName="my-endpoint-1", Body=lines.encode(), ContentType="application/jsonlines"
    )
    assert answer["ContentType"] == "application/jsonlines"
    rows = [json.loads(line) for line in answer["Body"].read().decode().splitlines()]
    assert len(rows) == 2 and all(r["label"] and r["prob"] for r in rows)


def test_errors_come_back_as_sagemaker_errors(runtime: Any) -> None:
    with pytest.raises(ClientError) as bad_body:
        runtime.invoke_endpoint(
            EndpointName="sentiment", Body=b"{not json", ContentType="application/json"
        )
    error = bad_body.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400
    assert "not valid JSON" in error["OriginalMessage"] or "JSON" in error["OriginalMessage"]
    with pytest.raises(ClientError) as media:
        runtime.invoke_endpoint(EndpointName="sentiment", Body=b"x", ContentType="text/csv")
    assert media.value.response["OriginalStatusCode"] == 415
    with pytest.raises(ClientError) as name:
        runtime.invoke_endpoint(
            EndpointName="-bad_name", Body=b"{}", ContentType="application/json"
        )
    assert name.value.response["Error"]["Code"] == "ValidationException"
    assert name.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_only_post_and_the_exact_route(endpoint: str) -> None:
    assert httpx.get(f"{endpoint}/endpoints/sentiment/invocations").status_code in (404, 405)
    assert httpx.post(f"{endpoint}/endpoints/sentiment/other", json={}).status_code == 404
