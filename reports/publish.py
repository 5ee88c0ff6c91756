"""The artifact store: where reports, verdicts and journals go after a stage.

`file://` (the default, `./artifacts/<flow>/<run-id>/...`) or `s3://bucket/prefix`
on AWS or any S3-speaking server (MinIO, Ceph, moto) through `endpoint_url`.
Every write is read back and its checksum compared with the local bytes; a
throttled or 5xx write is retried with exponential backoff by one policy
(tenacity; botocore's own retries are off so the count is ours).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlparse

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    nap,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from bot.config import SecretsConfig, StorageConfig
from bot.profiles import mask_url_passwords

if TYPE_CHECKING:
    from reports.render import Report

log = structlog.get_logger(__name__)

MARKDOWN: Final = "text/markdown; charset=utf-8"
HTML: Final = "text/html; charset=utf-8"
JSON: Final = "application/json"

# S3 error codes worth another attempt: the server said "later", not "no".
TRANSIENT_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "SlowDown",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
CREDENTIAL_CODES: Final = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "AuthorizationHeaderMalformed",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
MISSING_BUCKET_CODES: Final = frozenset({"NoSuchBucket"})


class PublishError(Exception):
    """An artifact that could not be stored; the message names the store and the key."""


class BadArtifactUrl(PublishError):
    pass


class BucketNotFound(PublishError):
    pass


class BadCredentials(PublishError):
    pass


class AccessDenied(PublishError):
    pass


class ChecksumMismatch(PublishError):
    pass


class StoreUnavailable(PublishError):
    """Still throttled or failing after every retry."""


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    data: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff for transient store errors: attempts in all, waits in seconds."""

    attempts: int = 5
    initial_s: float = 0.5
    max_s: float = 8.0


class ArtifactStore(ABC):
    """Where artifacts go; `ArtifactStore.from_url` picks the kind from the URL."""

    url: str

    @abstractmethod
    def put(self, name: str, data: bytes, content_type: str) -> str:
        """Store one artifact, verify it, and return its URL."""

    @abstractmethod
    def check(self) -> None:
        """Raise the PublishError a `put` would meet (no such bucket, no access, server
        unreachable) before there is anything to put: a pipeline checks its store
        before an hour-long run, not after it."""

    def put_many(self, artifacts: Iterable[Artifact]) -> list[str]:
        return [self.put(a.name, a.data, a.content_type) for a in artifacts]

    @staticmethod
    def from_url(
        url: str | None,
        storage: StorageConfig,
        secrets: SecretsConfig | None = None,
        retry: RetryPolicy | None = None,
    ) -> ArtifactStore:
        return from_url(url, storage, secrets, retry)


def checked_name(name: str) -> str:
    """A relative POSIX key with no '..', no empty part and no leading slash."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(p in ("", ".", "..") for p in name.split("/")):
        raise PublishError(f"artifact name {name!r} must be a relative path without '.' or '..'")
    return str(path)


class FileStore(ArtifactStore):
    """Artifacts as files under a root directory; each write is atomic and re-read."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = self.root.resolve().as_uri()

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PublishError(f"cannot create {self.root}: {exc.strerror or exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise AccessDenied(f"{self.root} is not writable")

    def put(self, name: str, data: bytes, content_type: str) -> str:
        target = self.root / checked_name(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            partial.write_bytes(data)
            os.replace(partial, target)
            stored = target.read_bytes()
        except OSError as exc:
            raise PublishError(f"cannot write artifact {target}: {exc.strerror or exc}") from exc
        if hashlib.sha256(stored).digest() != hashlib.sha256(data).digest():
            raise ChecksumMismatch(f"{target}: bytes read back differ from bytes written")
        log.info(
            "artifact_put",
            store="file",
            url=target.resolve().as_uri(),
            bytes=len(data),
            content_type=content_type,
        )
        return target.resolve().as_uri()


def _error_code(exc: BaseException) -> tuple[str, int]:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def is_transient(exc: BaseException) -> bool:
    """Throttling, 5xx and dropped connections are retried; everything else is final."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    dropped = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)
    if isinstance(exc, (*dropped, ConnectTimeoutError)):
        return True
    code, status = _error_code(exc)
    return code in TRANSIENT_CODES or status == 429 or status >= 500


class S3Store(ArtifactStore):
    """Artifacts as objects under `s3://bucket/prefix/` on any S3-compatible server."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.retry = retry
        self._sleep = sleep
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        # Shown in messages and logs, so a password in the endpoint URL is masked here.
        endpoint = str(getattr(getattr(client, "meta", None), "endpoint_url", "aws"))
        self.endpoint = mask_url_passwords(endpoint)

    @classmethod
    def connect(
        cls,
        bucket: str,
        prefix: str,
        storage: StorageConfig,
        secrets: SecretsConfig | None,
        retry: RetryPolicy = RetryPolicy(),
    ) -> S3Store:
        import boto3
        from botocore.config import Config

        key_id = secrets.s3_access_key_id if secrets else None
        secret = secrets.s3_secret_access_key if secrets else None
        credentials: dict[str, str] = {}
        if key_id is not None and secret is not None:
            credentials = {
                "aws_access_key_id": key_id.get_secret_value(),
                "aws_secret_access_key": secret.get_secret_value(),
            }
        config = Config(
            region_name=storage.s3_region,
            # one retry policy, ours, so a test can count attempts
            retries={"total_max_attempts": 1, "mode": "standard"},
            # path-style keeps MinIO and local servers working without DNS tricks
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
        )
        client = boto3.session.Session().client(
            "s3", endpoint_url=storage.s3_endpoint_url, config=config, **credentials
        )
        return cls(bucket, prefix, client, retry)

    def check(self) -> None:
        where = f"{self.url} ({self.endpoint})"
        self._call(where, lambda: self.client.head_bucket(Bucket=self.bucket))

    def key(self, name: str) -> str:
        name = checked_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, name: str, data: bytes, content_type: str) -> str:
        key = self.key(name)
        where = f"s3://{self.bucket}/{key} (endpoint {self.endpoint})"
        md5 = hashlib.md5(data, usedforsecurity=False)
        sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
        self._call(
            where,
            lambda: self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ContentMD5=base64.b64encode(md5.digest()).decode(),
                ChecksumSHA256=sha256,
            ),
        )
        head = self._call(
            where,
            lambda: self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"),
        )
        self._verify(where, head, data, md5.hexdigest(), sha256, content_type)
        url = f"s3://{self.bucket}/{key}"
        log.info("artifact_put", store="s3", url=url, bytes=len(data), content_type=content_type)
        return url

    def create(self, name: str, data: bytes, content_type: str) -> bool:
        """Write `name` only if no object has that name (S3's `If-None-Match: *`): False,
        and nothing written, when one exists. What an append-only record needs."""
        key = self.key(name)
        where = f"s3://{self.bucket}/{key} (endpoint {self.endpoint})"

        def request() -> bool:
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                       ContentType=content_type, IfNoneMatch="*")  # fmt: skip
            except Exception as exc:
                if _error_code(exc)[0] == "PreconditionFailed":
                    return False
                raise
            return True

        created: bool = self._call(where, request)
        return created

    def names(self, prefix: str) -> list[str]:
        """The names of the objects under `prefix` (relative to the store), sorted."""
        base = self.key(prefix)
        where = f"s3://{self.bucket}/{base} (endpoint {self.endpoint})"

        def request() -> list[str]:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base.rstrip("/") + "/"
            )
            keys = [o["Key"] for page in pages for o in page.get("Contents", ())]
            cut = len(self.prefix) + 1 if self.prefix else 0
            return sorted(k[cut:] for k in keys)

        listed: list[str] = self._call(where, request)
        return listed

    def get(self, name: str) -> bytes:
        key = self.key(name)
        where = f"s3://{self.bucket}/{key} (endpoint {self.endpoint})"
        body: bytes = self._call(
            where, lambda: self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        )
        return body

    @staticmethod
    def _verify(
        where: str, head: dict[str, Any], data: bytes, md5_hex: str, sha256: str, content_type: str
    ) -> None:
        """The stored object must be our bytes: size, SHA-256 when served, else the ETag."""
        size = int(head.get("ContentLength", -1))
        if size != len(data):
            raise ChecksumMismatch(f"{where}: stored {size} bytes, sent {len(data)}")
        stored_sha = head.get("ChecksumSHA256")
        etag = str(head.get("ETag", "")).strip('"')
        if stored_sha is not None:
            if stored_sha != sha256:
                raise ChecksumMismatch(f"{where}: SHA-256 {stored_sha} != local {sha256}")
        elif "-" not in etag and etag != md5_hex:
            # a single-part upload's ETag is the MD5 of its bytes
            raise ChecksumMismatch(f"{where}: ETag {etag} != local MD5 {md5_hex}")
        stored_type = head.get("ContentType")
        if stored_type is not None and stored_type != content_type:
            raise ChecksumMismatch(f"{where}: content type {stored_type!r}, sent {content_type!r}")

    def _call(self, where: str, request: Callable[[], Any]) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential(multiplier=self.retry.initial_s, max=self.retry.max_s),
            retry=retry_if_exception(is_transient),
            before_sleep=lambda state: _log_retry(where, state),
            reraise=True,
            sleep=self._sleep or nap.sleep,
        )
        try:
            return retrying(request)
        except Exception as exc:
            # botocore quotes the request URL, endpoint password included, in its messages:
            # `_typed` masks it, and `from None` keeps the raw text out of tracebacks.
            raise self._typed(where, exc) from None

    def _typed(self, where: str, exc: Exception) -> PublishError:
        from botocore.exceptions import NoCredentialsError, PartialCredentialsError

        if isinstance(exc, PublishError):
            return exc
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return BadCredentials(
                f"{where}: no S3 credentials; set secrets.s3_access_key_id and "
                "secrets.s3_secret_access_key (MMBOT_SECRETS__...) or the AWS_* environment"
            )
        code, status = _error_code(exc)
        detail = mask_url_passwords(str(exc))
        if code in MISSING_BUCKET_CODES or (status == 404 and code in ("", "404")):
            return BucketNotFound(f"{where}: bucket {self.bucket!r} does not exist")
        if code in CREDENTIAL_CODES:
            return BadCredentials(f"{where}: credentials rejected by the server ({code})")
        if code in ("AccessDenied", "403") or status == 403:
            return AccessDenied(f"{where}: access denied; the credentials lack s3:PutObject")
        if is_transient(exc):
            return StoreUnavailable(
                f"{where}: still failing after {self.retry.attempts} attempts ({code or detail})"
            )
        return PublishError(f"{where}: {code or type(exc).__name__}: {detail}")


def _log_retry(where: str, state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    code, status = _error_code(error) if error is not None else ("", 0)
    log.warning(
        "artifact_put_retry",
        where=mask_url_passwords(where),
        attempt=state.attempt_number,
        code=code,
        status=status,
    )


def from_url(
    url: str | None,
    storage: StorageConfig,
    secrets: SecretsConfig | None = None,
    retry: RetryPolicy | None = None,
) -> ArtifactStore:
    """A store for `file://path` or `s3://bucket/prefix`; None means the configured URL.
    Without `retry`, S3 requests are tried `storage.s3_retry_attempts` times."""
    retry = retry or RetryPolicy(attempts=storage.s3_retry_attempts)
    target = url or storage.artifacts_url
    parsed = urlparse(target)
    if parsed.scheme == "file":
        # file://./artifacts is relative (netloc '.'), file:///abs is absolute
        path = unquote(parsed.netloc + parsed.path) if parsed.netloc else unquote(parsed.path)
        if not path:
            raise BadArtifactUrl(f"artifact URL {target!r} has no path")
        return FileStore(Path(path))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise BadArtifactUrl(f"artifact URL {target!r} has no bucket (s3://bucket/prefix)")
        return S3Store.connect(parsed.netloc, parsed.path, storage, secrets, retry)
    raise BadArtifactUrl(
        f"artifact URL {target!r}: scheme must be file:// or s3:// (storage.artifacts_url)"
    )


def publish_report(report: Report, store: ArtifactStore, run_id: str) -> list[str]:
    """Markdown, HTML and the verdict as JSON under `<stage>/<run-id>/`; their URLs."""
    run = checked_name(run_id)
    if "/" in run:
        raise PublishError(f"run id {run_id!r} must be one path segment")
    base = f"{report.stage}/{run}"
    artifacts = [
        Artifact(f"{base}/report.md", report.markdown.encode(), MARKDOWN),
        Artifact(f"{base}/report.html", report.html.encode(), HTML),
    ]
    if report.verdict is not None:
        body = json.dumps(report.verdict.to_dict(), indent=2, sort_keys=True, default=str)
        artifacts.append(Artifact(f"{base}/verdict.json", body.encode(), JSON))
    return store.put_many(artifacts)
