"""An S3 bucket behind the storage seam (`sentiment.storage.Bucket`), through boto3.

boto3 rather than fsspec + s3fs: SageMaker needs boto3 anyway, and s3fs rides on aiobotocore,
which pins a narrow botocore range that fights the boto3 we install; one SDK, one credential
chain, and boto3's managed transfers (multipart, parallel parts) for large files.

Writes land whole: an object is first written under a temporary key beside its final one
(`.tmp-NAME.<random>`), then copied to the final key (S3 makes a completed copy visible at
once, never part of it) and the temporary object deleted. A failed upload leaves at most a
`.tmp-` object, which `list` hides, never a truncated object under the final name.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from sentiment.errors import ConfigError, InputNotFound
from sentiment.files import TMP_PREFIX, atomic_path, dumps_json

SCHEMES = ("s3://", "s3a://", "s3n://")


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key prefix without trailing slash) of `s3://bucket/prefix`."""
    for scheme in SCHEMES:
        if uri.startswith(scheme):
            rest = uri[len(scheme) :]
            break
    else:
        raise ConfigError(f"{uri!r} is not an s3:// URI.")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ConfigError(f"{uri!r} names no bucket.", hint="Write s3://BUCKET/optional/prefix.")
    return bucket, prefix.strip("/")


class S3Bucket:
    """A bucket that is an S3 bucket, or a prefix ("folder") of one."""

    def __init__(self, uri: str, *, client: Any = None) -> None:
        self.name, self.prefix = split_uri(uri)
        self.uri = f"s3://{self.name}" + (f"/{self.prefix}" if self.prefix else "")
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from sentiment.aws import client

            self._client = client("s3")
        return self._client

    def _key(self, key: str) -> str:
        parts = [p for p in key.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ConfigError(f"Key {key!r} points outside the bucket {self.uri}.")
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def url(self, key: str) -> str:
        """The s3:// URI of `key`."""
        return f"s3://{self.name}/{self._key(key)}"

    def local_path(self, key: str) -> Path:
        raise ConfigError(
            f"{self.uri} is in S3, and this step needs a folder on this machine.",
            hint="Use a local --bucket/--output for this step, or copy the files with `aws s3 cp`.",
        )

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        from sentiment.aws import aws_error

        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as err:
            raise aws_error(err, what) from None

    def head(self, key: str) -> str | None:
        """The object's version as "size:etag", or None when there is no such object."""
        from botocore.exceptions import BotoCoreError, ClientError

        from sentiment.aws import aws_error

        try:
            answer = self.client.head_object(Bucket=self.name, Key=self._key(key))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise aws_error(err, f"S3 HeadObject {self.url(key)}") from None
        except BotoCoreError as err:
            raise aws_error(err, f"S3 HeadObject {self.url(key)}") from None
        return f"{answer.get('ContentLength')}:{answer.get('ETag')}"

    def exists(self, key: str) -> bool:
        return self.head(key) is not None

    def read_bytes(self, key: str) -> bytes:
        try:
            answer = self._call(
                f"S3 GetObject {self.url(key)}",
                self.client.get_object,
                Bucket=self.name,
                Key=self._key(key),
            )
        except InputNotFound:
            raise InputNotFound(f"{key!r} is not in the bucket {self.uri}.") from None
        return bytes(answer["Body"].read())

    def get_file(self, key: str, target: Path) -> Path:
        """Download `key` to `target` (atomically: a temporary file renamed at the end)."""
        if not self.exists(key):
            raise InputNotFound(f"{key!r} is not in the bucket {self.uri}.")
        with atomic_path(target) as tmp:
            self._call(
                f"S3 download {self.url(key)}",
                self.client.download_file,
                Bucket=self.name,
                Key=self._key(key),
                Filename=str(tmp),
            )
        return target

    def _land(self, key: str, upload: Any) -> None:
        """Upload through a temporary key, then copy to the final key and drop the temporary."""
        final = self._key(key)
        head, _, base = final.rpartition("/")
        tmp = (head + "/" if head else "") + f"{TMP_PREFIX}{base}.{uuid.uuid4().hex[:12]}"
        try:
            upload(tmp)
            self._call(
                f"S3 copy to {self.url(key)}",
                self.client.copy,
                CopySource={"Bucket": self.name, "Key": tmp},
                Bucket=self.name,
                Key=final,
            )
        finally:
            self._call(
                "S3 DeleteObject (temporary)",
                self.client.delete_object,
                Bucket=self.name,
                Key=tmp,
            )

    def write_bytes(self, key: str, data: bytes) -> None:
        self._land(
            key,
            lambda tmp: self._call(
                f"S3 PutObject {self.url(key)}",
                self.client.put_object,
                Bucket=self.name,
                Key=tmp,
                Body=data,
            ),
        )

    def put_file(self, key: str, source: Path) -> None:
        self._land(
            key,
            lambda tmp: self._call(
                f"S3 upload {source} to {self.url(key)}",
                self.client.upload_file,
                Filename=str(source),
                Bucket=self.name,
                Key=tmp,
            ),
        )

    def delete(self, key: str) -> None:
        self._call(
            f"S3 DeleteObject {self.url(key)}",
            self.client.delete_object,
            Bucket=self.name,
            Key=self._key(key),
        )

    def _pages(self, prefix: str, **extra: Any) -> Any:
        paginator = self.client.get_paginator("list_objects_v2")
        return self._call(
            f"S3 ListObjectsV2 {self.uri}",
            lambda: list(paginator.paginate(Bucket=self.name, Prefix=prefix, **extra)),
        )

    def children(self, prefix: str = "") -> list[str]:
        """Names of the immediate "folders" under `prefix` (S3's common prefixes)."""
        base = self._key(prefix)
        search = base + "/" if base else ""
        names = set()
        for page in self._pages(search, Delimiter="/"):
            for item in page.get("CommonPrefixes", []):
                names.add(item["Prefix"][len(search) :].rstrip("/"))
        return sorted(names)

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: Any) -> None:
        self.write_bytes(key, dumps_json(value))

    def list(self, prefix: str = "") -> list[str]:
        base = self._key(prefix)
        search = base + "/" if base else ""
        cut = len(self.prefix) + 1 if self.prefix else 0
        keys = []
        for page in self._pages(search):
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.rpartition("/")[2].startswith(TMP_PREFIX):
                    keys.append(key[cut:])
        return sorted(keys)
