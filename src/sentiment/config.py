"""Settings: the one reader of the environment.

Precedence, highest first: explicit values (CLI flags) > environment (`SENTIMENT_<FIELD>`) >
the defaults below. Settings are read once, at the edge (the CLI or a server's entry point), and
passed down; no other module reads `os.environ`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sentiment.errors import ConfigError
from sentiment.labels import LabelMap

ENV_PREFIX = "SENTIMENT_"
SAGEMAKER_PORT = "SAGEMAKER_BIND_TO_PORT"
# Settings handed whole to a server's worker processes (`Settings.dumps`, `Settings.inherited`),
# so that no setting is left behind by a list of the ones to pass on.
HANDED_OVER = ENV_PREFIX + "HANDED_OVER"


def _default_cache() -> Path:
    return Path.home() / ".cache" / "sentiment"


@dataclass(frozen=True)
class Settings:
    # Where stages write artifacts (prepared data, training jobs, models, reports): a local
    # folder or s3://BUCKET/prefix (`sentiment.storage` picks the backend).
    bucket: str = "bucket"
    # Downloads (public datasets) and unpacked models are cached here.
    cache_dir: Path = field(default_factory=_default_cache)
    # Base URL the public datasets are downloaded from (default: fast.ai's bucket); a mirror or
    # a local server can stand in for it.
    dataset_mirror: str = ""
    # Spark master for `prepare`: local mode on all cores unless told otherwise.
    spark_master: str = "local[*]"
    # Spark driver memory; local mode runs everything in the driver.
    spark_driver_memory: str = "4g"
    # Whether prepare's Spark reads and writes s3:// inputs and outputs itself, through Hadoop's
    # s3a connector (as s3a://), rather than staging them through the cache. Always so on a
    # cluster master (anything but local[...]) and for paths written s3a://.
    spark_s3a: bool = False
    # The s3a connector's jars: "auto" = hadoop-aws 3.3.1 and the AWS SDK bundle, fetched from
    # PyPI into the cache (sentiment.prepare.s3a), "none" = the cluster has them (EMR;
    # spark-submit --packages org.apache.hadoop:hadoop-aws:VERSION), or comma-separated paths.
    spark_s3a_jars: str = "auto"
    # prepare and evaluate fail when the rows of their input rejected for any one reason
    # (outside the layout's labels, wrong column count, undecodable bytes, open quote) are more
    # than this share of the rows read: a wrong --layout or a file that is not a reviews CSV,
    # rather than a few bad rows (blank lines do not count). 1 = never fail.
    max_reject_ratio: float = 0.01
    # Worker threads for training and inference (0 = all cores).
    threads: int = 0
    # Address servers bind to.
    host: str = "127.0.0.1"
    # Port of the SageMaker-compatible model endpoint (`sentiment serve`).
    serve_port: int = 8080
    # Port of the public sentiment API and web page (`sentiment api`).
    api_port: int = 8000
    # URL of the model endpoint the API calls.
    endpoint_url: str = "http://127.0.0.1:8080"
    # A SageMaker endpoint the API calls instead, by name, with InvokeEndpoint (the AWS SDK:
    # SigV4 and the standard credential chain); empty = the endpoint at endpoint_url.
    sagemaker_endpoint: str = ""
    # AWS region of that endpoint (empty = the SDK's chain: AWS_REGION, the profile, ...).
    aws_region: str = ""
    # Whether the API cleans text before InvokeEndpoint: "auto" when the endpoint's image is
    # SageMaker's BlazingText (a stock container does not clean text), "yes" or "no".
    sagemaker_normalize: str = "auto"
    # The model.tar.gz that endpoint hosts (a path or s3:// URI), when its container is
    # SageMaker's BlazingText: the API cleans text by its preprocessing.json and calibrates the
    # container's scores by its calibration.json. Empty = the model's ModelDataUrl, found
    # through DescribeModel.
    sagemaker_model_data: str = ""
    # API keys accepted in `x-api-key` (comma-separated in the environment); empty = open API.
    api_keys: tuple[str, ...] = ()
    # Origins allowed by CORS on the API (comma-separated; "*" for any).
    cors_origins: tuple[str, ...] = ()
    # Model the endpoint serves (job name, model.tar.gz, folder or .bin); empty = SageMaker's
    # container layout, /opt/ml/model.
    model: str = ""
    # Where SageMaker puts the model inside a container.
    sagemaker_model_dir: Path = Path("/opt/ml/model")
    # Worker processes of the endpoint (each loads the model once).
    serve_workers: int = 1
    # The names the four answers read for a model's own labels, as LABEL=NAME pairs
    # (`1=negative,2=positive`; names: negative, neutral, positive, 1_star..5_stars): a model
    # whose labels are not ours, e.g. SageMaker's BlazingText trained on a raw dataset. Without
    # it, labels 1-2 or 1-5 alone are read as Zhang's layouts (`sentiment.labels.LabelMap`).
    # The endpoint, the API, predict and evaluate read it; /invocations keeps the model's labels.
    label_map: LabelMap = field(default_factory=LabelMap)
    # Take instances as pre-tokenized text, as BlazingText does, instead of normalizing them.
    serve_raw: bool = False
    # Token that protects the endpoint's admin routes (model update); empty = admin disabled.
    admin_token: str = ""
    # Most texts one POST /sentiment may carry, and most UTF-8 bytes per text (AWS Comprehend's
    # BatchDetectSentiment limits). A body larger than these allow is refused (413) unread;
    # see `api_max_body_bytes`.
    api_max_texts: int = 25
    api_max_text_bytes: int = 5000
    # Show the model endpoint's URL (an internal address) in the API's public answers (`model`
    # info, /healthz); off by default: the API's own log names it.
    api_show_endpoint: bool = False
    # Below this confidence the API answers "neutral" (0 = always the top of the four answers).
    neutral_threshold: float = 0.0
    # An answer whose own score (of positive, negative, neutral, mixed) is below this is marked
    # `uncertain` by the API and shown so by the web page; 0.5 = no answer holds a majority.
    uncertain_below: float = 0.5
    # Seconds the API waits for the endpoint, and retries on connection errors / 503.
    endpoint_timeout: float = 10.0
    endpoint_retries: int = 2
    # Seconds a client of the endpoint or the API has to send a request's headers (from its
    # first byte, or from opening the connection) and then its whole body (6 MB, the largest
    # /invocations takes, in 30 s: 200 KB/s at least). Past that it gets a 408 and the
    # connection is closed: a slow client would otherwise hold a connection and its buffered
    # bytes for as long as it likes.
    http_header_timeout: float = 10.0
    http_body_timeout: float = 30.0
    # On shutdown (SIGTERM), seconds an idle keep-alive connection stays open for one last
    # request (answered with `Connection: close`) before it is closed, so that clients with a
    # connection pool see no reset.
    http_drain_seconds: float = 1.0
    # Seconds a keep-alive connection is used before its next answer closes it (`Connection:
    # close`; 0: never). A client's pool then reconnects, and the kernel spreads the new
    # connections over the workers: a worker replaced after a crash gets its share of a
    # long-lived pool (the API's) instead of none until the pool idles. One reconnect a
    # connection every 10 s: a TCP handshake on 127.0.0.1 is ~0.1 ms.
    http_connection_max_age: float = 10.0
    # Logging level for servers and jobs.
    log_level: str = "info"

    @classmethod
    def load(
        cls,
        overrides: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from flags (`overrides`, None values ignored) > environment > defaults."""
        env = os.environ if environ is None else environ
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"Unknown setting(s): {', '.join(sorted(unknown))}.")
        values: dict[str, Any] = {}
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.name in given:
                values[f.name] = _coerce(f.name, given[f.name], hints[f.name], source="flag")
            elif ENV_PREFIX + f.name.upper() in env:
                raw = env[ENV_PREFIX + f.name.upper()]
                values[f.name] = _coerce(f.name, raw, hints[f.name], source="environment")
        # SageMaker tells a container which port to bind with its own variable.
        if "serve_port" not in given and SAGEMAKER_PORT in env:
            values["serve_port"] = _coerce(
                "serve_port", env[SAGEMAKER_PORT], int, source="sagemaker"
            )
        return cls(**values)

    def dumps(self) -> str:
        """Every setting as JSON (what `loads` reads back): how a process hands its settings
        whole to workers it does not fork (`HANDED_OVER`)."""
        return json.dumps(
            {
                f.name: list(v)
                if isinstance(v, tuple)
                else str(v)
                if isinstance(v, Path | LabelMap)
                else v
                for f in fields(self)
                for v in [getattr(self, f.name)]
            }
        )

    @classmethod
    def loads(cls, text: str) -> Settings:
        """The settings `dumps` wrote (a setting it does not name keeps its default)."""
        hints = typing.get_type_hints(cls)
        given = json.loads(text)
        return cls(
            **{
                f.name: _coerce(f.name, given[f.name], hints[f.name], source=HANDED_OVER)
                for f in fields(cls)
                if f.name in given
            }
        )

    @classmethod
    def inherited(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """A worker's settings: those its server handed over (`HANDED_OVER`), else `load`."""
        env = os.environ if environ is None else environ
        if HANDED_OVER in env:
            return cls.loads(env[HANDED_OVER])
        return cls.load(environ=env)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def api_max_body_bytes(self) -> int:
        """The largest POST /sentiment body that can hold `api_max_texts` texts of
        `api_max_text_bytes` each: JSON writes one UTF-8 byte as at most 6 (a control character
        as `\\u0001`), plus quotes, commas and whitespace per text, and room for the object
        around them. 25 x 5,000 bytes -> 754,496 bytes."""
        return self.api_max_texts * (6 * self.api_max_text_bytes + 16) + 4096

    @property
    def workers(self) -> int:
        """Threads to use: the setting, or every core when it is 0."""
        return self.threads or os.cpu_count() or 1


def _coerce(name: str, value: Any, hint: Any, *, source: str) -> Any:
    where = {
        "environment": f"SENTIMENT_{name.upper()}",
        "sagemaker": SAGEMAKER_PORT,
        HANDED_OVER: f"{name} in {HANDED_OVER}",
    }.get(source, f"--{name.replace('_', '-')}")
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is LabelMap:
        return value if isinstance(value, LabelMap) else LabelMap.parse(value, where)
    if hint is tuple or origin is tuple:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return tuple(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise ConfigError(f"{where} must be true or false, got {value!r}.")
    if hint is int:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a whole number, got {value!r}.") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}.") from None
    if hint is Path:
        return Path(value).expanduser()
    return str(value)
