"""Where the API gets probabilities from: a SageMaker-compatible endpoint, or a model in-process.

Both answer the same question: for each string, the probability of every label the model knows.
The four answers (`answer`) come from `sentiment.answers` either way: computed next to the model
when it can (our endpoint, asked with `"configuration": {"answers": true}`, which it lists in its
`GET /`; a model in-process), so only the texts travel; otherwise (a stock BlazingText
endpoint) from the probabilities of the texts and their sentences, asked in one call and
combined here. The endpoint is asked with `k` = `MAX_LABELS` so the answer holds every label (fastText
returns at most as many labels as it has), which works with SageMaker's own BlazingText
endpoints too: only `/invocations` and `/ping` are needed. Whether the scores are calibrated is
read from our endpoint's `GET /` (its model's `calibration`); an endpoint that does not
describe its model (a stock BlazingText one) leaves it unknown. A model's labels are read
through the label map (`sentiment.labels.LabelMap`, the setting) once per label set
(`reading`): an endpoint's answers keep the model's own labels.

The endpoint client pools connections (one `aiohttp.ClientSession`), bounds every call by a
timeout, and retries connection errors and 503s a bounded number of times with exponential
backoff. What it cannot fix becomes an error with the right status for the API to answer:
503 when the endpoint cannot be reached, 502 when it answers with an error, 504 when it is
too slow. The messages do not name the endpoint's URL (an internal address, and they reach the
API's public answers); the API's log does.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
import time
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

import aiohttp
import numpy as np
import orjson

from sentiment import answers as answering
from sentiment.errors import ConfigError, ModelError, Unavailable, UpstreamError, UpstreamTimeout
from sentiment.labels import LabelMap, strip_prefix

MAX_LABELS = 100
NO_MAP = LabelMap()

log = logging.getLogger("sentiment.api")


@dataclass(frozen=True)
class Probabilities:
    """The probability of every label (`classes`, names without `__label__`, in column order)
    for each string asked, one row per string."""

    classes: tuple[str, ...]
    rows: np.ndarray  # (strings, classes) float64


@dataclass(frozen=True)
class Calibrated:
    """Whether the model's scores are calibrated: True, False, or None when the endpoint does
    not say (a stock SageMaker endpoint); `method` is the calibration's, when there is one."""

    known: bool | None
    method: str | None = None


@dataclass(frozen=True)
class Answered:
    """The four answers of texts: the probabilities of every label for each text (`classes` in
    column order) and its (n, 4) scores in `sentiment.answers.SENTIMENTS` order."""

    classes: tuple[str, ...]
    rows: np.ndarray  # (texts, classes) float64
    scores: np.ndarray  # (texts, 4) float64
    # Each text's answer (index into SENTIMENTS) when the endpoint sent it: ours decides with
    # its own model's label map, which the API may not know (None: decided from `scores`).
    decided: list[int] | None = None


class Reading(NamedTuple):
    """How the answers read a model's labels: their names (`LabelMap.names`) and the answer
    weights of those (`answers.weights_for`)."""

    names: tuple[str, ...]
    weights: tuple[float, ...]


class Predictor(Protocol):
    source: str

    async def probabilities(self, strings: list[str]) -> Probabilities: ...
    async def calibrated(self) -> Calibrated: ...
    async def health(self) -> dict[str, Any]: ...
    async def labels(self) -> list[str]: ...
    def describe(self) -> dict[str, Any]: ...
    async def close(self) -> None: ...


class Answering(Protocol):
    """A predictor that computes the four answers itself (None: not this time, see `answer`)."""

    async def answers(self, texts: list[str]) -> Answered | None: ...


async def answer(predictor: Predictor, texts: list[str], label_map: LabelMap = NO_MAP) -> Answered:
    """The four answers of `texts`, by `sentiment.answers` either next to the model (a
    predictor that computes them) or here, from one call for the texts and their sentences
    (the results are the same: tests/test_api_answers.py); the model's labels read through
    `label_map` (the setting). ModelError when a label has no polarity."""
    # Not isinstance(predictor, Answering): a runtime-checkable protocol's check costs ~9 us a
    # request (it looks up each member), more than the rest of this function for one text.
    if texts and getattr(predictor, "answers", None) is not None:
        try:
            found = await cast(Answering, predictor).answers(texts)
        except ModelError:
            # The endpoint cannot read its labels' polarity (served without the label map):
            # answered here from the labels' probabilities, through this map.
            found = None
        if found is not None:
            if found.decided is None:
                reading(label_map, found.classes)  # labels without polarity: ModelError here
            return found
    plan = answering.plan(texts)
    probs = await predictor.probabilities(plan.strings)
    if not texts:
        return Answered(probs.classes, probs.rows, np.zeros((0, len(answering.SENTIMENTS))))
    scores = answering.combine(plan, reading(label_map, probs.classes).names, probs.rows)
    return Answered(probs.classes, probs.rows[: plan.n], scores)


@functools.lru_cache(maxsize=64)
def reading(label_map: LabelMap, classes: tuple[str, ...]) -> Reading:
    """How the answers read an endpoint's labels through `label_map`, worked out once for a
    label set (a cache hit: ~0.2 us a request, where `weights_for` alone took 0.8); ModelError
    for a label with no polarity."""
    names = label_map.names(classes)[0]
    return Reading(names, answering.weights_for(names))


def _described_map(value: object, url: str) -> LabelMap:
    """The label map an endpoint describes (`1=negative,2=positive`); none when it is not one
    (logged: the API then reads the labels by its own setting)."""
    try:
        return LabelMap.parse(str(value), where="the endpoint's label_map")
    except ConfigError as err:
        log.warning("the model endpoint at %s describes a label map we cannot read: %s", url, err)
        return NO_MAP


def _matrix(rows: list[dict[str, Any]]) -> Probabilities:
    """SageMaker's answers ({"label": [...], "prob": [...]} per string, best first) as one
    matrix, columns in label-name order, probabilities clipped to [0, 1] (fastText reports
    p + 1e-5). Plain lists, then one array: 157 rows of 2 labels in ~110 us, where filling the
    array cell by cell took ~190 us (same run)."""
    seen: set[str] = set()
    for item in rows:
        seen.update(item["label"])
    named = sorted((strip_prefix(label), label) for label in seen)
    classes = tuple(name for name, _ in named)
    if len(set(classes)) != len(classes):
        raise ValueError(f"labels {sorted(seen)} name a class twice")
    column = {label: i for i, (_, label) in enumerate(named)}
    empty = [0.0] * len(classes)
    table = []
    for item in rows:
        row = empty.copy()
        for label, p in zip(item["label"], item["prob"], strict=True):
            row[column[label]] = p
        table.append(row)
    out = np.clip(np.array(table, dtype=np.float64).reshape(len(rows), len(classes)), 0.0, 1.0)
    return Probabilities(classes, out)


def request_body(strings: list[str]) -> bytes:
    """The /invocations request for `strings`: every label of each (k = MAX_LABELS)."""
    return orjson.dumps({"instances": strings, "configuration": {"k": MAX_LABELS}})


def parse_answer(content: bytes, expected: int) -> Probabilities:
    """An endpoint's answer to `request_body` for `expected` strings, checked."""
    try:
        out = _matrix(orjson.loads(content))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise UpstreamError(
            f"The model endpoint answered something that is not a SageMaker prediction ({err})."
        ) from None
    if len(out.rows) != expected:
        raise UpstreamError(
            f"The model endpoint answered {len(out.rows)} predictions for {expected} texts."
        )
    return out


# How long the endpoint's description (is it calibrated?) is trusted before it is asked again:
# a model swap on the endpoint shows within this many seconds.
DESCRIBE_TTL = 30.0


class EndpointPredictor:
    """A SageMaker-compatible endpoint behind a URL (ours, or a real one).

    The client is aiohttp's rather than httpx's: measured on this project's 2-core machine
    against our endpoint, one sequential POST /invocations costs 0.28 ms with aiohttp and
    0.86 ms with httpx's AsyncClient, and that difference is most of the latency the API adds
    (issue 7's target is <= 1 ms at p50). httpx stays for the synchronous downloads.
    """

    source = "endpoint"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retries: int = 2,
        backoff: float = 0.05,
        describe_ttl: float = DESCRIBE_TTL,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.describe_ttl = describe_ttl
        self._session: aiohttp.ClientSession | None = None
        self._labels: list[str] = []
        self._calibrated = Calibrated(None)
        self._answers = False  # whether the endpoint computes the four answers (ours does)
        # The label map its model is served with (ours says it in GET /): the API reads the
        # endpoint's labels through it when it has none of its own (`label_map`).
        self._label_map = NO_MAP
        self._described_at: float | None = None
        self._describing: asyncio.Task[None] | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the server's event loop (aiohttp binds a session to it).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, limit_per_host=64, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(self.timeout, 2.0)),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                raise_for_status=False,
            )
        return self._session

    async def probabilities(self, strings: list[str]) -> Probabilities:
        if not strings:
            return Probabilities((), np.zeros((0, 0)))
        content = await self._post(request_body(strings))
        out = parse_answer(content, len(strings))
        self._labels = list(out.classes)  # the labels of the model served now
        return out

    async def answers(self, texts: list[str]) -> Answered | None:
        """The four answers from our endpoint (`"answers": true`): one call with the texts
        alone, where a stock endpoint needs their sentences too (25 reviews: 25 strings sent
        instead of 157). None when the endpoint does not list the flag in its `GET /`."""
        await self.calibrated()  # the endpoint's description, read once for all
        if not self._answers:
            return None
        body = orjson.dumps(
            {"instances": texts, "configuration": {"k": MAX_LABELS, "answers": True}}
        )
        content = await self._post(body)
        try:
            found = orjson.loads(content)
            out = _matrix(found)
            scores = np.array([_four(item["scores"]) for item in found], dtype=np.float64).reshape(
                len(found), len(answering.SENTIMENTS)
            )
            decided = [_SENTIMENT_INDEX[item["sentiment"]] for item in found]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise UpstreamError(
                f"The model endpoint answered something that is not a prediction with the four "
                f"answers ({err})."
            ) from None
        if len(out.rows) != len(texts):
            raise UpstreamError(
                f"The model endpoint answered {len(out.rows)} predictions for {len(texts)} texts."
            )
        self._labels = list(out.classes)
        return Answered(out.classes, out.rows, scores, decided)

    def label_map(self) -> LabelMap:
        """The label map the endpoint's model is served with, as its last `GET /` said (none:
        a stock endpoint, or ours without one)."""
        return self._label_map

    async def calibrated(self) -> Calibrated:
        """From the endpoint's `GET /` (ours describes its model), asked again in the
        background once `describe_ttl` seconds have passed; unknown when it does not say."""
        stale = (
            self._described_at is None or time.monotonic() - self._described_at > self.describe_ttl
        )
        if stale and self._describing is None:
            self._describing = asyncio.create_task(self._describe())
        if self._described_at is None and self._describing is not None:
            await asyncio.shield(self._describing)  # the first answer waits (once for all)
        return self._calibrated

    async def _describe(self) -> None:
        found = Calibrated(None)
        answers = False
        label_map = NO_MAP
        try:
            async with self._client().get(
                f"{self.url}/", timeout=aiohttp.ClientTimeout(total=min(self.timeout, 2.0))
            ) as response:
                if response.status == 200:
                    description = orjson.loads(await response.read())
                    accepted = description.get("configuration")
                    answers = isinstance(accepted, list) and "answers" in accepted
                    model = description.get("model")
                    if isinstance(model, dict) and "calibration" in model:
                        method = (model["calibration"] or {}).get("method")
                        found = Calibrated(bool(method and method != "identity"), method)
                    if isinstance(model, dict) and model.get("label_map"):
                        label_map = _described_map(model["label_map"], self.url)
        except (aiohttp.ClientError, TimeoutError, ValueError, TypeError, AttributeError) as err:
            log.info("the model endpoint at %s does not describe its model: %r", self.url, err)
        finally:
            self._calibrated = found
            self._answers = answers
            self._label_map = label_map
            self._described_at = time.monotonic()
            self._describing = None

    async def _post(self, body: bytes) -> bytes:
        attempt = 0
        while True:
            try:
                async with self._client().post(
                    f"{self.url}/invocations",
                    data=body,
                    headers=_JSON_HEADERS,
                ) as response:
                    status = response.status
                    content = await response.read()
            except TimeoutError:
                log.warning("the model endpoint at %s did not answer in time", self.url)
                raise UpstreamTimeout(
                    f"The model endpoint did not answer within {self.timeout:g}s.",
                    hint="Try again later; if it persists, check the endpoint's load.",
                ) from None
            except aiohttp.ClientError as err:
                if attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                log.warning("the model endpoint at %s cannot be reached: %r", self.url, err)
                raise Unavailable(
                    f"The model endpoint cannot be reached ({type(err).__name__}).",
                    hint="Start it (`sentiment serve`) or check --endpoint-url.",
                ) from None
            if status == 503 and attempt < self.retries:
                attempt += 1
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if status == 503:
                log.warning("the model endpoint at %s is not ready (503)", self.url)
                raise Unavailable(
                    "The model endpoint is not ready (503).",
                    hint="Try again in a moment.",
                )
            if status == 422 and content.startswith(b'{"error":"bad_model"'):
                # Our endpoint's model cannot do what was asked (the four answers of labels
                # without polarity): the caller may do without it (`answer`).
                raise ModelError(_message(content))
            if status != 200:
                text = content[:200].decode("utf-8", "replace")
                log.warning("the model endpoint at %s answered HTTP %d: %s", self.url, status, text)
                raise UpstreamError(f"The model endpoint answered HTTP {status}: {text}")
            return content

    async def labels(self) -> list[str]:
        return await known_labels(self, self._labels)

    async def health(self) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            async with self._client().get(
                f"{self.url}/ping", timeout=aiohttp.ClientTimeout(total=min(self.timeout, 2.0))
            ) as response:
                await response.read()
                ok = response.status == 200
                detail = None if ok else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as err:
            ok, detail = False, type(err).__name__
        return {
            "url": self.url,
            "ok": ok,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "detail": detail,
        }

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "endpoint": self.url}

    async def close(self) -> None:
        if self._describing is not None:
            await self._describing
        if self._session is not None:
            await self._session.close()


def _message(content: bytes) -> str:
    """The message of our error answer `content` (bounded: it may reach the API's answers)."""
    try:
        return str(orjson.loads(content)["message"])[:1000]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return content[:200].decode("utf-8", "replace")


_JSON_HEADERS = {"content-type": "application/json", "accept": "application/json"}
# The four scores of an answer's "scores" object, in SENTIMENTS order (one C call: 25 texts,
# 8 -> 5 us).
_four = operator.itemgetter(*answering.SENTIMENTS)
_SENTIMENT_INDEX = {name: i for i, name in enumerate(answering.SENTIMENTS)}


class LocalPredictor:
    """A model loaded in this process (`sentiment api --model`)."""

    source = "in-process"

    def __init__(self, model: Any) -> None:
        self.model = model

    async def probabilities(self, strings: list[str]) -> Probabilities:
        if len(strings) > 8:
            from starlette.concurrency import run_in_threadpool

            rows = await run_in_threadpool(self.model.predict_proba, strings)
        else:
            rows = self.model.predict_proba(strings)
        return Probabilities(tuple(self.model.classes), rows)

    async def answers(self, texts: list[str]) -> Answered | None:
        if len(texts) > 8:
            from starlette.concurrency import run_in_threadpool

            whole, scores = await run_in_threadpool(self.model.scored, texts)
        else:
            whole, scores = self.model.scored(texts)
        return Answered(tuple(self.model.classes), whole, scores)

    async def calibrated(self) -> Calibrated:
        calibration = self.model.calibration
        if calibration is None:
            return Calibrated(False)
        return Calibrated(not calibration.is_identity, calibration.method)

    async def labels(self) -> list[str]:
        return list(self.model.classes)

    async def health(self) -> dict[str, Any]:
        return {"url": None, "ok": True, "latency_ms": 0.0, "detail": "model loaded in-process"}

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "name": self.model.name, "sha256": self.model.sha256}

    async def close(self) -> None:
        return None


async def known_labels(predictor: Any, known: list[str]) -> list[str]:
    """An endpoint predictor's labels: those its last answer named, else those of one probe
    request (none while the endpoint does not answer)."""
    if not known:
        try:
            return list((await predictor.probabilities(["hello"])).classes)
        except (Unavailable, UpstreamError, UpstreamTimeout):
            return []
    return list(known)
