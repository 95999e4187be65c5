"""The API as an AWS Lambda function behind API Gateway.

The handler is called in-process with events shaped as AWS documents them for Lambda proxy
integrations (tests/data/aws/: a REST API v1 event and an HTTP API v2 payload-format-2.0 event,
base64 body), with a real `sentiment serve` process behind it.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aws_fixtures import REGION, Aws
from conftest import REPO
from sentiment.config import Settings

EVENTS = REPO / "tests" / "data" / "aws"
CONTEXT = SimpleNamespace(
    function_name="sentiment-api",
    aws_request_id="8f2e1b9a-0000-4000-8000-000000000000",
    get_remaining_time_in_millis=lambda: 29_000,
)


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def _body(answer: dict[str, Any]) -> Any:
    raw = answer["body"]
    if answer.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


@pytest.fixture
def handler(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """sentiment.api.aws_lambda.handler configured, as on Lambda, by the environment alone."""
    from sentiment.api import aws_lambda

    monkeypatch.setenv("SENTIMENT_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("SENTIMENT_API_KEYS", "k1,k2")
    monkeypatch.setattr(aws_lambda, "_adapter", None)
    yield aws_lambda.handler


def _with_key(event: dict[str, Any], key: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["headers"]["x-api-key"] = key
    if "multiValueHeaders" in event:
        event["multiValueHeaders"]["x-api-key"] = [key]
    return event


@pytest.mark.parametrize("sample", ["apigateway-rest-v1.json", "apigateway-http-v2.json"])
def test_post_sentiment_from_api_gateway(handler: Any, sample: str) -> None:
    answer = handler(_with_key(_event(sample), "k1"), CONTEXT)
    assert answer["statusCode"] == 200, answer
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers.get("x-request-id")
    body = _body(answer)
    assert [r["sentiment"] for r in body["results"]] == ["positive", "negative"]
    assert body["errors"] == []
    assert body["model"]


def test_settings_apply_and_errors_are_json(handler: Any) -> None:
    event = _event("apigateway-http-v2.json")
    refused = handler(event, CONTEXT)  # no x-api-key: SENTIMENT_API_KEYS applies
    assert refused["statusCode"] == 401
    assert "error" in _body(refused) or "message" in _body(refused)
    broken = _with_key(event, "k2")
    broken["body"], broken["isBase64Encoded"] = "{not json", False
    answer = handler(broken, CONTEXT)
    assert 400 <= answer["statusCode"] < 500
    assert isinstance(_body(answer), dict)


def test_healthz_and_warm_invocations_reuse_the_app(handler: Any) -> None:
    from sentiment.api import aws_lambda

    event = copy.deepcopy(_event("apigateway-http-v2.json"))
    event.update(routeKey="GET /healthz", rawPath="/healthz", body=None, isBase64Encoded=False)
    event["requestContext"]["http"].update(method="GET", path="/healthz")
    first = handler(event, CONTEXT)
    adapter = aws_lambda._adapter
    second = handler(event, CONTEXT)
    assert aws_lambda._adapter is adapter
    for answer in (first, second):
        assert answer["statusCode"] == 200, answer
        assert _body(answer)["endpoint"]["ok"] is True


def test_build_handler_takes_settings(endpoint: str, tmp_path: Path) -> None:
    from sentiment.api.aws_lambda import build_handler

    adapter = build_handler(Settings.load(environ={"SENTIMENT_ENDPOINT_URL": endpoint}))
    answer = adapter(_event("apigateway-rest-v1.json"), CONTEXT)
    assert answer["statusCode"] == 200


def test_lambda_calls_a_sagemaker_endpoint(
    endpoint: str, aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SENTIMENT_SAGEMAKER_ENDPOINT: InvokeEndpoint through the AWS SDK, as the function's role
    would. moto's SageMaker holds the endpoint's description (health); it hosts nothing, so
    the runtime calls go to our real endpoint (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME)."""
    from sentiment.api import aws_lambda
    from sentiment.aws import client
    from sentiment.aws import sagemaker as sm

    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sentiment-endpoint:latest"
    spec = sm.DeploySpec(
        endpoint="lambda-target",
        model_data="s3://b/m/model.tar.gz",
        role="arn:aws:iam::123456789012:role/x",
        image=image,
    )
    sm.deploy(spec, client=client("sagemaker", REGION), log=lambda _: None)
    monkeypatch.setenv("SENTIMENT_SAGEMAKER_ENDPOINT", "lambda-target")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", endpoint)
    monkeypatch.setattr(aws_lambda, "_adapter", None)
    answer = aws_lambda.handler(_event("apigateway-rest-v1.json"), CONTEXT)
    assert answer["statusCode"] == 200, answer
    assert [r["sentiment"] for r in _body(answer)["results"]] == ["positive", "negative"]
    health = copy.deepcopy(_event("apigateway-rest-v1.json"))
    health.update(path="/healthz", resource="/healthz", httpMethod="GET", body=None)
    answer = aws_lambda.handler(health, CONTEXT)
    assert answer["statusCode"] == 200
    assert _body(answer)["endpoint"]["detail"] == "InService"
