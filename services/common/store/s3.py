"""The S3 store (MinIO in production, SeaweedFS in tests) through the `minio` client.

Atomicity comes from S3 itself: a single PUT or a completed multipart upload appears all at once,
and an incomplete multipart upload is never listed or readable (minio aborts it on an exception;
after a crash, a bucket lifecycle rule `AbortIncompleteMultipartUpload` reclaims its parts).

The content hash travels as user metadata `x-amz-meta-sha256`, which S3 fixes when an upload
starts. `put_stream` therefore spools its chunks to an anonymous local temp file while hashing,
then uploads: the object is never visible without its hash, and a writer killed while spooling
leaves nothing anywhere (the temp file is unlinked from the start).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import InvalidArgument, NotFound, PermissionDenied, PolyglotError, Unavailable
from services.common.store.base import (
    CHUNK_SIZE,
    ArtifactStore,
    ObjectInfo,
    dir_prefix,
    sha256_file,
    validate_key,
    validate_prefix,
)

if TYPE_CHECKING:
    from services.common.store.uri import StoreLocation

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's floor for every part but the last
MAX_PARTS = 10_000
SHA_META = "sha256"  # sent as x-amz-meta-sha256
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

_NOT_FOUND = {"NoSuchKey", "NoSuchObject", "NoSuchVersion"}
_DENIED = {"AccessDenied", "AllAccessDisabled", "InvalidToken", "ExpiredToken", "AccountProblem"}
_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "ServerBusy"}


class S3Settings(BaseSettings):
    """Where the S3 store connects; read from `POLYGLOT_S3_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="POLYGLOT_S3_", extra="forbid")

    endpoint: str = Field(
        "127.0.0.1:9000",
        description="host:port of the S3 API (an http:// or https:// prefix also sets `secure`)",
    )
    access_key: str | None = Field(None, description="access key id; unset means anonymous requests")
    secret_key: SecretStr | None = Field(None, description="secret key of `access_key`")
    secure: bool = Field(False, description="use HTTPS")
    region: str = Field("us-east-1", description="signing region (also spares a bucket-location lookup)")
    create_bucket: bool = Field(True, description="create the bucket on the first write if missing")
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection")
    read_timeout: float = Field(300.0, gt=0, description="seconds to wait for response data")
    max_retries: int = Field(3, ge=0, description="retries on connection errors and 5xx responses")
    part_size: int = Field(16 * MiB, ge=MIN_PART_SIZE, description="multipart part size in bytes")
    spool_dir: str | None = Field(None, description="where put_stream spools (default: system temp)")

    @model_validator(mode="after")
    def _split_scheme(self) -> S3Settings:
        for scheme, secure in (("https://", True), ("http://", False)):
            if self.endpoint.startswith(scheme):
                self.endpoint = self.endpoint[len(scheme) :]
                self.secure = secure
        self.endpoint = self.endpoint.rstrip("/")
        if not self.endpoint or "/" in self.endpoint:
            raise ValueError(f"endpoint must be host:port, got {self.endpoint!r}")
        if self.access_key and self.secret_key is None:
            raise ValueError("secret_key is required with access_key")
        return self


def validate_bucket(bucket: str) -> str:
    if not isinstance(bucket, str) or not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise InvalidArgument(f"{bucket!r} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)", field="bucket")
    return bucket


class S3Store(ArtifactStore):
    """Objects in `bucket` under an optional key `prefix`.

    Settings come from the environment (`S3Settings`); keyword arguments override them, e.g.
    `S3Store("artifacts", endpoint="127.0.0.1:8333", access_key=..., secret_key=...)`.
    Constructing a store does no network I/O.
    """

    scheme = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, settings: S3Settings | None = None, **overrides: Any):
        self.bucket = validate_bucket(bucket)
        self.prefix = dir_prefix(prefix.strip("/"))
        if settings is None:
            self.settings = S3Settings(**overrides)
        else:
            self.settings = S3Settings(**{**settings.model_dump(), **overrides}) if overrides else settings
        s = self.settings
        self._endpoint_url = f"{'https' if s.secure else 'http'}://{s.endpoint}"
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=s.connect_timeout, read=s.read_timeout),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            retries=urllib3.Retry(total=s.max_retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(
            s.endpoint,
            access_key=s.access_key,
            secret_key=s.secret_key.get_secret_value() if s.secret_key else None,
            secure=s.secure,
            region=s.region,
            http_client=http,
        )
        self._bucket_ready = False

    @classmethod
    def from_location(cls, location: StoreLocation, **overrides: Any) -> S3Store:
        return cls(location.bucket, location.path, **overrides)

    def uri(self, key: str = "") -> str:
        validate_prefix(key, field="key")
        full = self.prefix + key if key else self.prefix.rstrip("/")
        return f"s3://{self.bucket}" + (f"/{full}" if full else "")

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    # -- errors -------------------------------------------------------------------------------------

    def _who(self) -> str:
        ak = self.settings.access_key
        return f"access key id {ak!r}" if ak else "anonymous access (no access key set)"

    def _translate(self, exc: S3Error, key: str | None) -> PolyglotError:
        where = self.uri(key) if key else self.uri()
        code = exc.code
        if code in _NOT_FOUND:
            return NotFound(f"no object {where}")
        if code == "NoSuchBucket":
            return NotFound(f"bucket {self.bucket!r} does not exist at {self._endpoint_url}")
        if code == "InvalidAccessKeyId":
            return PermissionDenied(
                f"S3 at {self._endpoint_url} does not know {self._who()}; check POLYGLOT_S3_ACCESS_KEY"
            )
        if code == "SignatureDoesNotMatch":
            return PermissionDenied(
                f"S3 at {self._endpoint_url} rejected the request signature for {self._who()}: "
                "the secret key is wrong; check POLYGLOT_S3_SECRET_KEY"
            )
        if code in _DENIED:
            return PermissionDenied(
                f"S3 at {self._endpoint_url} denied access to {where} for {self._who()} ({code}): "
                "wrong secret key or missing permission; check POLYGLOT_S3_ACCESS_KEY/SECRET_KEY"
            )
        if code in _TRANSIENT:
            return Unavailable(f"S3 at {self._endpoint_url} is unavailable ({code}) for {where}")
        return PolyglotError(f"S3 error {code} for {where}: {exc.message}")

    @contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Turn client and transport failures into the project's domain errors."""
        try:
            yield
        except S3Error as exc:
            raise self._translate(exc, key) from exc
        except ServerError as exc:
            raise Unavailable(f"S3 at {self._endpoint_url} failed: {exc}") from exc
        except InvalidResponseError as exc:
            raise Unavailable(f"{self._endpoint_url} did not answer like an S3 server: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Unavailable(f"cannot reach S3 at {self._endpoint_url}: {reason}") from exc

    # -- writing ------------------------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        if self._bucket_ready or not self.settings.create_bucket:
            return
        with self._errors():
            if not self._client.bucket_exists(self.bucket):
                try:
                    self._client.make_bucket(self.bucket)
                except S3Error as exc:  # another writer created it meanwhile
                    if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise
        self._bucket_ready = True

    def _upload(self, key: str, data: BinaryIO, size: int, sha: str) -> ObjectInfo:
        name = self._name(key)
        self._ensure_bucket()
        # A fixed part size would exceed S3's 10,000-part limit for very large objects.
        needed = math.ceil(math.ceil(size / MAX_PARTS) / MIN_PART_SIZE) * MIN_PART_SIZE
        with self._errors(key):
            self._client.put_object(
                self.bucket,
                name,
                data,
                size,
                metadata={SHA_META: sha},
                part_size=max(self.settings.part_size, needed),
            )
        return self.stat(key)

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        data = bytes(data)
        return self._upload(key, io.BytesIO(data), len(data), hashlib.sha256(data).hexdigest())

    def put_file(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        validate_key(key)
        if not os.path.isfile(path):
            raise NotFound(f"{path} is not a file", field="path")
        sha, size = sha256_file(path)
        with open(path, "rb") as f:
            return self._upload(key, f, size, sha)

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        validate_key(key)
        digest, size = hashlib.sha256(), 0
        with tempfile.TemporaryFile(dir=self.settings.spool_dir) as spool:
            for chunk in chunks:
                digest.update(chunk)
                spool.write(chunk)
                size += len(chunk)
            spool.seek(0)
            return self._upload(key, spool, size, digest.hexdigest())

    # -- reading ------------------------------------------------------------------------------------

    def stat(self, key: str) -> ObjectInfo:
        name = self._name(key)
        with self._errors(key):
            st = self._client.stat_object(self.bucket, name)
        sha = st.metadata.get(f"x-amz-meta-{SHA_META}") if st.metadata else None
        if not sha:  # an object written by another tool: hash its content once per stat
            digest = hashlib.sha256()
            for chunk in self.stream(key):
                digest.update(chunk)
            sha = digest.hexdigest()
        return ObjectInfo(key=key, size=st.size or 0, sha256=sha, uri=self.uri(key), modified=st.last_modified)

    def size(self, key: str) -> int:
        name = self._name(key)
        with self._errors(key):
            return self._client.stat_object(self.bucket, name).size or 0

    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        name = self._name(key)
        with self._errors(key):
            response = self._client.get_object(self.bucket, name)

        def chunks() -> Iterator[bytes]:
            try:
                with self._errors(key):
                    yield from response.stream(chunk_size)
            finally:
                response.close()
                response.release_conn()

        return chunks()

    def _keys(self, prefix: str) -> Iterator[str]:
        with self._errors():
            for obj in self._client.list_objects(self.bucket, prefix=self.prefix + prefix, recursive=True):
                if obj.is_dir or not obj.object_name:
                    continue
                key = obj.object_name[len(self.prefix) :]
                try:
                    validate_key(key)
                except InvalidArgument:  # a foreign key this store could not address: skip it
                    continue
                yield key

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._errors(key):
            self._client.remove_object(self.bucket, name)
