"""The API's predictor for a real SageMaker endpoint: InvokeEndpoint through the AWS SDK.

`sentiment api --sagemaker-endpoint NAME` (or SENTIMENT_SAGEMAKER_ENDPOINT) calls the runtime
API, `POST /endpoints/NAME/invocations`, signed with SigV4 by boto3 from the standard credential
chain; `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` points it elsewhere (at `sentiment serve`, which
answers that route). Our own endpoint behind a URL keeps the aiohttp client
(`EndpointPredictor`), which is faster: no signing, no thread hop.

A stock BlazingText container splits the text on spaces and looks the tokens up as they are;
it does not clean text as prepare did, so the predictor sends the one normalization
(`sentiment.text.normalize_many`) itself when the endpoint's image is BlazingText's (found
through DescribeEndpoint -> DescribeEndpointConfig -> DescribeModel), or when told to. Our
endpoint image cleans text itself, as `sentiment serve` does.

A stock container answers fastText's uncalibrated scores (p + 1e-5, most texts "100%"). When
the model.tar.gz it hosts is one of ours, it holds `calibration.json`, whose `reported` fit
calibrates exactly those scores, and `preprocessing.json`, the text rules the model was trained
with: the predictor reads both from the archive (`--sagemaker-model-data`, else the model's
`ModelDataUrl` from DescribeModel; `sentiment.model.read_sidecars` streams the archive and stops
before model.bin), cleans text by those rules and calibrates the scores as `sentiment serve`
would have with that calibration, and says so (`calibrated()`, `describe()`). A model SageMaker
trained holds neither: its scores stay uncalibrated and are reported so (`sentiment calibrate`
makes a calibrated archive of it).

Health is DescribeEndpoint's status (the runtime API has no /ping): InService is healthy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from sentiment import layout
from sentiment.api.predictors import (
    Calibrated,
    Probabilities,
    known_labels,
    parse_answer,
    request_body,
)
from sentiment.calibration import Calibration, count_words
from sentiment.errors import (
    ConfigError,
    SentimentError,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from sentiment.text import DEFAULT_CLEANING, Cleaning

log = logging.getLogger("sentiment.api")

# How the API decides whether to clean text before InvokeEndpoint.
NORMALIZE_CHOICES = ("auto", "yes", "no")
# DescribeEndpoint is a control-plane call with a low request rate: /healthz reuses an answer
# this many seconds old.
HEALTH_TTL = 5.0


@dataclass(frozen=True)
class Artifacts:
    """What the API knows of the model a stock endpoint hosts: the text rules it was trained
    with and the calibration of the scores the container reports (None: uncalibrated), read
    from `source` (a model.tar.gz); `problem` says why they could not be read."""

    cleaning: Cleaning = DEFAULT_CLEANING
    calibration: Calibration | None = None
    source: str | None = None
    problem: str | None = None


class SageMakerPredictor:
    """InvokeEndpoint on a SageMaker endpoint (application/json, BlazingText's format)."""

    source = "sagemaker"

    def __init__(
        self,
        endpoint: str,
        *,
        region: str | None = None,
        timeout: float = 10.0,
        retries: int = 2,
        normalize: str = "auto",
        model_data: str = "",
        runtime: Any = None,
        control: Any = None,
    ) -> None:
        if normalize not in NORMALIZE_CHOICES:
            raise ConfigError(
                f"The SageMaker normalization setting must be one of {', '.join(NORMALIZE_CHOICES)}, "
                f"got {normalize!r}."
            )
        self.endpoint = endpoint
        self.region = region
        self.timeout = timeout
        self.retries = retries
        self.normalize = normalize
        self._runtime = runtime
        self._control = control
        self._cleans: bool | None = {"yes": True, "no": False}.get(normalize)
        self._image: str | None = None
        # The model.tar.gz the endpoint hosts: given, or its ModelDataUrl (DescribeModel).
        self.model_data = model_data
        self._model_data_url: str | None = None
        self._artifacts: Artifacts | None = None
        self._reading: asyncio.Task[Artifacts] | None = None
        self._labels: list[str] = []
        self._health: tuple[float, dict[str, Any]] | None = None
        # boto3 is synchronous: calls run on these threads (botocore clients are thread-safe).
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="invoke-endpoint")

    def _client(self, service: str) -> Any:
        from botocore.config import Config

        from sentiment.aws import client

        config = Config(
            connect_timeout=min(self.timeout, 2.0),
            read_timeout=self.timeout,
            retries={"max_attempts": self.retries + 1, "mode": "standard"},
            max_pool_connections=32,
        )
        return client(service, self.region, config=config)

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            self._runtime = self._client("sagemaker-runtime")
        return self._runtime

    @property
    def control(self) -> Any:
        if self._control is None:
            self._control = self._client("sagemaker")
        return self._control

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- cleaning -----------------------------------------------------------------------------

    def _detect(self) -> bool:
        """Whether we must clean text: the endpoint's (first) container is BlazingText's image.
        Unknown (no permission to describe) counts as yes: a stock container would otherwise see
        raw text, and our endpoint's second pass changes next to nothing (measured: 4,999 of
        5,000 normalized polarity reviews came out of a second normalization unchanged)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            found = self.control.describe_endpoint(EndpointName=self.endpoint)
            config = self.control.describe_endpoint_config(
                EndpointConfigName=found["EndpointConfigName"]
            )
            model = self.control.describe_model(
                ModelName=config["ProductionVariants"][0]["ModelName"]
            )
        except (ClientError, BotoCoreError, KeyError, IndexError):
            return True
        container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
        self._image = str(container.get("Image", ""))
        self._model_data_url = container.get("ModelDataUrl") or None
        return is_blazingtext_image(self._image)

    def _read_artifacts(self) -> Artifacts:
        """The model's text rules and reported-score calibration, from its archive, when the
        endpoint reports fastText's own scores (a stock container: `_cleans`)."""
        from sentiment.model import Preprocessing, read_sidecars

        source = self.model_data or self._model_data_url
        if not self._cleans or not source:
            return Artifacts()
        try:
            found = read_sidecars(source)
            cleaning = DEFAULT_CLEANING
            if layout.PREPROCESSING in found:
                recorded = json.loads(found[layout.PREPROCESSING])
                cleaning = Preprocessing.from_dict(recorded).cleaning
            calibration = None
            if layout.CALIBRATION in found:
                read = Calibration.from_dict(json.loads(found[layout.CALIBRATION]))
                calibration = read.for_reported()
                if calibration is None:
                    log.warning(
                        "%s: its calibration reads exact log-probabilities, which a BlazingText "
                        "container does not answer; the scores stay uncalibrated (refit it with "
                        "`sentiment calibrate`)",
                        source,
                    )
            return Artifacts(cleaning, calibration, source)
        except Exception as err:
            # The archive is optional: any failure to read it (no s3:GetObject, a throttled or
            # unreachable S3, a malformed file) leaves the scores as the container gives them,
            # said so, and never fails an answer.
            problem = (
                err.message if isinstance(err, SentimentError) else f"{type(err).__name__}: {err}"
            )
            log.warning("cannot read the endpoint's model %s: %s", source, problem)
            return Artifacts(source=source, problem=problem)

    async def artifacts(self) -> Artifacts:
        """`_read_artifacts`, once (concurrent first requests wait for the same read, each for
        at most the endpoint timeout: a request that would wait longer goes on without them,
        and the read goes on for the next ones)."""
        if self._artifacts is not None:
            return self._artifacts
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._first_read())
        try:
            return await asyncio.wait_for(asyncio.shield(self._reading), self.timeout)
        except TimeoutError:
            return Artifacts(problem="still reading the model's archive")

    async def _first_read(self) -> Artifacts:
        if self._cleans is None:
            self._cleans = await self._run(self._detect)
        self._artifacts = await self._run(self._read_artifacts)
        return self._artifacts

    async def _prepare(self, texts: list[str]) -> tuple[list[str], Artifacts]:
        found = await self.artifacts()
        if self._cleans is False:  # not yet known (still describing): cleaned, as unknown is
            return texts, found
        from sentiment.text import normalize_many

        return normalize_many(texts, found.cleaning), found

    # -- predictions --------------------------------------------------------------------------

    def _invoke(self, body: bytes) -> bytes:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint,
                Body=body,
                ContentType="application/json",
                Accept="application/json",
            )
            return bytes(answer["Body"].read())
        except ReadTimeoutError:
            raise UpstreamTimeout(
                f"SageMaker endpoint {self.endpoint} did not answer within {self.timeout:g}s."
            ) from None
        except (EndpointConnectionError, ConnectTimeoutError) as err:
            raise Unavailable(f"SageMaker runtime cannot be reached ({err}).") from None
        except ClientError as err:
            info = err.response.get("Error", {})
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = " ".join(str(info.get("Message", "")).split())[:200]
            if info.get("Code") in {"ModelError", "ModelNotReadyException"} and status != 503:
                raise UpstreamError(
                    f"SageMaker endpoint {self.endpoint}'s model answered an error: {message}"
                ) from None
            if status in (429, 503) or info.get("Code") in {"ThrottlingException"}:
                raise Unavailable(
                    f"SageMaker endpoint {self.endpoint} is busy or not ready ({info.get('Code')}).",
                    hint="Try again in a moment.",
                ) from None
            if info.get("Code") == "ValidationException":
                raise Unavailable(
                    f"SageMaker endpoint {self.endpoint}: {message}",
                    hint="Check --sagemaker-endpoint and --region.",
                ) from None
            raise UpstreamError(
                f"SageMaker InvokeEndpoint on {self.endpoint} failed: {info.get('Code')}: {message}"
            ) from None
        except BotoCoreError as err:
            raise Unavailable(f"SageMaker InvokeEndpoint on {self.endpoint}: {err}") from None

    async def probabilities(self, strings: list[str]) -> Probabilities:
        if not strings:
            return Probabilities((), np.zeros((0, 0)))
        sent, found = await self._prepare(strings)
        out = parse_answer(await self._run(self._invoke, request_body(sent)), len(strings))
        self._labels = list(out.classes)
        calibration = found.calibration
        if calibration is None or sorted(out.classes) != sorted(calibration.labels):
            return out
        # The container's p + 1e-5, calibrated as `sentiment serve` would with this fit.
        ordered = calibration.reordered(out.classes)
        words = count_words(strings) if ordered.length else None
        return Probabilities(out.classes, ordered.apply(out.rows, words))

    async def calibrated(self) -> Calibrated:
        # The runtime API describes no model (ours says so at GET /, which SageMaker does not
        # route): calibrated here when the hosted archive holds a fit of reported scores; else
        # unknown for a container of ours (it calibrates itself), uncalibrated for a stock one.
        found = await self.artifacts()
        if found.calibration is not None:
            return Calibrated(True, found.calibration.method)
        return Calibrated(False if self._cleans and found.source else None)

    async def labels(self) -> list[str]:
        return await known_labels(self, self._labels)

    # -- health -------------------------------------------------------------------------------

    def _describe(self) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        started = time.perf_counter()
        try:
            found = self.control.describe_endpoint(EndpointName=self.endpoint)
            status = str(found.get("EndpointStatus"))
            ok, detail = status == "InService", status
            if found.get("FailureReason"):
                detail = f"{status}: {found['FailureReason']}"
        except ClientError as err:
            info = err.response.get("Error", {})
            ok, detail = False, f"{info.get('Code')}: {info.get('Message')}"
        except BotoCoreError as err:
            ok, detail = False, type(err).__name__
        return {
            # Under "url", as the other predictors: the API shows it only when told to.
            "url": f"sagemaker:{self.endpoint}",
            "ok": ok,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "detail": detail,
        }

    async def health(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._health is None or now - self._health[0] > HEALTH_TTL:
            self._health = (now, await self._run(self._describe))
        return self._health[1]

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "endpoint": self.endpoint,
            "region": self.region or str(self.runtime.meta.region_name),
            "normalizes": self._cleans,
            # The calibration applied here to a stock container's scores (its archive's
            # location stays private: the server's log names it, and why it was not read).
            "calibration": None
            if self._artifacts is None or self._artifacts.calibration is None
            else self._artifacts.calibration.method,
        }

    async def close(self) -> None:
        self._pool.shutdown(wait=False)


def is_blazingtext_image(image: str) -> bool:
    """Whether an image URI is SageMaker's BlazingText (ACCOUNT.dkr.ecr.REGION.../blazingtext:TAG)."""
    repository = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    return repository == "blazingtext"
