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

import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

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
        return bytes(self._get(key)["Body"].read())

    def _get(self, key: str) -> Any:
        """GetObject's answer for `key` (its body not read yet)."""
        try:
            return self._call(
                f"S3 GetObject {self.url(key)}",
                self.client.get_object,
                Bucket=self.name,
                Key=self._key(key),
            )
        except InputNotFound:
            raise InputNotFound(f"{key!r} is not in the bucket {self.uri}.") from None

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

    def delete_tree(self, prefix: str) -> None:
        """Delete every object under `prefix` (temporary ones and folder markers too)."""
        base = self._key(prefix)
        if not base:
            raise ConfigError(f"Refusing to delete the whole bucket {self.uri}.")
        keys = [
            {"Key": item["Key"]}
            for page in self._pages(base + "/")
            for item in page.get("Contents", [])
        ]
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1,000 keys at most
            self._call(
                f"S3 DeleteObjects {self.uri}/{prefix}",
                self.client.delete_objects,
                Bucket=self.name,
                Delete={"Objects": keys[start : start + 1000], "Quiet": True},
            )

    def copy_from(self, source: S3Bucket, key: str, target_key: str) -> None:
        """Copy `key` of `source` to `target_key` here, in S3 (a managed copy: large objects in
        parts, which S3 shows only once the copy is complete)."""
        self._call(
            f"S3 copy {source.url(key)} to {self.url(target_key)}",
            self.client.copy,
            CopySource={"Bucket": source.name, "Key": source._key(key)},
            Bucket=self.name,
            Key=self._key(target_key),
        )

    def check(self) -> None:
        """Raise our error (not found, denied, unreachable) unless the bucket answers."""
        try:
            self._call(f"S3 HeadBucket s3://{self.name}", self.client.head_bucket, Bucket=self.name)
        except InputNotFound as err:
            raise InputNotFound(
                f"The S3 bucket {self.name!r} does not exist.",
                hint=f"Create it (aws s3 mb s3://{self.name}) or check the name ({err.message}).",
            ) from None

    def open_read(self, key: str) -> BinaryIO:
        """The object's bytes as a buffered stream (lines can be iterated), read as it goes."""
        body = self._get(key)["Body"]
        return cast(BinaryIO, io.BufferedReader(_Body(body), buffer_size=1 << 20))

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """A file whose bytes become the object `key`: sent as they come, in parts of a
        multipart upload, which S3 shows only once it is completed (one PutObject when small);
        aborted if the block raises, so nothing appears under `key`."""
        upload = _Upload(self, key)
        try:
            yield cast(BinaryIO, upload)
            upload.complete()
        except BaseException:
            upload.abort()
            raise

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


class _Body(io.RawIOBase):
    """A botocore StreamingBody as a raw stream, for io.BufferedReader."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


class _Upload(io.RawIOBase):
    """Bytes written to an S3 object in parts of `PART` bytes (S3's minimum is 5 MiB but for the
    last part), one part in memory at a time."""

    PART = 16 << 20

    def __init__(self, bucket: S3Bucket, key: str) -> None:
        self._bucket = bucket
        self._key = key
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._id: str | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        while len(self._buffer) >= self.PART:
            self._send(self.PART)
        return len(data)

    def _send(self, size: int) -> None:
        b = self._bucket
        if self._id is None:
            self._id = b._call(
                f"S3 CreateMultipartUpload {b.url(self._key)}",
                b.client.create_multipart_upload,
                Bucket=b.name,
                Key=b._key(self._key),
            )["UploadId"]
        number = len(self._parts) + 1
        answer = b._call(
            f"S3 UploadPart {b.url(self._key)}",
            b.client.upload_part,
            Bucket=b.name,
            Key=b._key(self._key),
            UploadId=self._id,
            PartNumber=number,
            Body=bytes(self._buffer[:size]),
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        del self._buffer[:size]

    def complete(self) -> None:
        b = self._bucket
        if self._id is None:
            b.write_bytes(self._key, bytes(self._buffer))
            return
        if self._buffer:
            self._send(len(self._buffer))
        b._call(
            f"S3 CompleteMultipartUpload {b.url(self._key)}",
            b.client.complete_multipart_upload,
            Bucket=b.name,
            Key=b._key(self._key),
            UploadId=self._id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        if self._id is not None:
            b = self._bucket
            with contextlib.suppress(Exception):
                b.client.abort_multipart_upload(
                    Bucket=b.name, Key=b._key(self._key), UploadId=self._id
                )
