"""Property-based fuzzing of a real `sentiment serve` process: whatever a client sends to
POST /invocations or POST /admin/model, the answer is below 500 and its body is what the
content type promises (JSON, or JSON lines)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import start_endpoint

TOKEN = "fuzz-token"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

MEDIA_TYPES = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/jsonlines",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/x-jsonlines",
            "application/jsonl",
            "text/csv",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "*/*",
            "",
        ]
    ),
    # (what a client can send: printable ASCII, no surrounding spaces)
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60).map(str.strip),
)
# Any JSON document, biased towards the shapes the endpoint reads.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=20,
)
INSTANCES = st.lists(st.text(max_size=200) | JSON_VALUES, max_size=8)
CONFIGURATION = st.none() | JSON_VALUES | st.fixed_dictionaries({"k": JSON_VALUES})
SHAPED = st.builds(
    lambda instances, configuration: {"instances": instances, "configuration": configuration},
    INSTANCES,
    CONFIGURATION,
)
JSON_LINES = st.lists(
    st.fixed_dictionaries(
        {"source": st.text(max_size=100) | JSON_VALUES}, optional={"k": JSON_VALUES}
    )
    | JSON_VALUES,
    max_size=6,
).map(lambda items: b"\n".join(json.dumps(i).encode() for i in items))
BODIES = st.one_of(
    st.binary(max_size=2000),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    SHAPED.map(lambda v: json.dumps(v).encode()),
    JSON_LINES,
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@pytest.fixture(scope="module")
def fuzzed(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_endpoint(
        tiny_model_dir / "model.bin",
        tmp_path_factory.mktemp("fuzz") / "serve.log",
        env={"SENTIMENT_ADMIN_TOKEN": TOKEN},
    )
    yield url
    output = process.output()
    process.stop()
    assert "Traceback" not in output, output[-3000:]


def check_answer(response: httpx.Response, sent_type: str) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    media = response.headers.get("content-type", "")
    if media.startswith("application/jsonlines"):
        assert response.status_code == 200 and sent_type.lower().startswith("application/")
        for line in response.content.splitlines():
            assert isinstance(orjson.loads(line), dict)
    else:
        assert media.startswith("application/json"), (response.status_code, media)
        body = orjson.loads(response.content)
        if response.status_code >= 400:
            assert isinstance(body, dict) and {"error", "message"} <= set(body)
            assert "Traceback" not in body["message"]


@pytest.mark.timeout(300)
def test_invocations_answers_any_request_with_a_4xx_or_json(fuzzed: str) -> None:
    with httpx.Client(base_url=fuzzed, timeout=30) as client:

        @FUZZ
        @given(body=BODIES, content_type=MEDIA_TYPES, accept=MEDIA_TYPES)
        def check(body: bytes, content_type: str, accept: str) -> None:
            headers = {"content-type": content_type, "accept": accept}
            check_answer(client.post("/invocations", content=body, headers=headers), content_type)

        check()
        # Still serving after all that.
        assert client.post("/invocations", json={"instances": ["great"]}).status_code == 200


@pytest.mark.timeout(300)
def test_admin_route_answers_any_request_with_a_4xx_or_json(fuzzed: str) -> None:
    with httpx.Client(base_url=fuzzed, timeout=30) as client:
        before = client.get("/").json()["model"]["sha256"]

        @FUZZ
        @given(
            body=BODIES
            | st.builds(
                lambda ref: json.dumps({"model": ref}).encode(),
                st.text(max_size=300) | JSON_VALUES,
            ),
            content_type=MEDIA_TYPES,
            token=st.sampled_from([TOKEN, "", "wrong", TOKEN + "x"]),
            scheme=st.sampled_from(["Bearer ", "bearer ", "Basic ", ""]),
        )
        def check(body: bytes, content_type: str, token: str, scheme: str) -> None:
            headers = {"content-type": content_type, "authorization": (scheme + token).strip()}
            response = client.post("/admin/model", content=body, headers=headers)
            assert response.status_code != 200, response.text  # no fuzzed swap can succeed
            check_answer(response, "application/json")

        check()
        assert client.get("/").json()["model"]["sha256"] == before


HEADER_LINES = st.lists(
    st.one_of(
        st.binary(max_size=60),
        st.builds(
            lambda name, value: name + b": " + value,
            st.sampled_from(
                [b"content-type", b"content-length", b"transfer-encoding", b"expect", b"accept"]
            )
            | st.binary(min_size=1, max_size=20),
            st.binary(max_size=40)
            | st.sampled_from([b"chunked", b"100-continue", b"-1", b"abc", b"99999999999999999"]),
        ),
    ),
    max_size=5,
)


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send `request` on a new connection, end the sending side, read the answer to the end."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server closed first: it answered or refused
            pass
        answer = b""
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                return answer
            answer += data
        return answer


@pytest.mark.timeout(300)
def test_malformed_http_is_answered_with_a_4xx_json(fuzzed: str) -> None:
    """Requests below the application (bad header lines, lengths, encodings): a 4xx with a JSON
    body (uvicorn's own answer to what it cannot parse was plain text), or no answer at all."""

    @settings(max_examples=200, deadline=None, database=None)
    @given(lines=HEADER_LINES, body=st.binary(max_size=300))
    def check(lines: list[bytes], body: bytes) -> None:
        head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        answer = raw_exchange(
            fuzzed, head + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body
        )
        if not answer:
            return
        status_line, _, rest = answer.partition(b"\r\n")
        status = int(status_line.split()[1])
        assert status < 500, answer[:500]
        headers, _, payload = rest.partition(b"\r\n\r\n")
        if status == 100:
            return
        assert b"content-type: application/json" in headers.lower(), answer[:500]
        orjson.loads(payload)

    check()
    raw = raw_exchange(fuzzed, b"POST /invocations HTTP/1.1\r\nContent-Length: abc\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400 ") and raw.endswith(b"}")
