"""The artifact store without a server: file://, URL parsing, names, error mapping."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from bot.config import StorageConfig
from gates.verdict import Check, Status, Verdict
from reports.publish import (
    HTML,
    JSON,
    MARKDOWN,
    Artifact,
    ArtifactStore,
    BadArtifactUrl,
    ChecksumMismatch,
    FileStore,
    PublishError,
    S3Store,
    is_transient,
    publish_report,
)
from reports.render import Report

STORAGE = StorageConfig()


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


def test_file_url_relative_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = ArtifactStore.from_url("file://./artifacts", STORAGE)
    assert isinstance(relative, FileStore) and relative.root == Path("./artifacts")
    absolute = ArtifactStore.from_url(f"file://{tmp_path}/abs", STORAGE)
    assert isinstance(absolute, FileStore) and absolute.root == tmp_path / "abs"
    default = ArtifactStore.from_url(None, STORAGE)  # storage.artifacts_url
    assert isinstance(default, FileStore) and default.root == Path("./artifacts")


@pytest.mark.parametrize("url", ["http://host/x", "s3:///prefix", "ftp://a/b", "file://"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(BadArtifactUrl, match="artifact URL"):
        ArtifactStore.from_url(url, STORAGE)


def test_s3_url_gives_bucket_and_prefix() -> None:
    store = ArtifactStore.from_url(
        "s3://bucket/a/b/", StorageConfig(s3_endpoint_url="http://127.0.0.1:9")
    )
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.key("x/y.md")) == ("bucket", "a/b", "a/b/x/y.md")


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../up", "a/../../b", "a//b", "./a"])
def test_names_that_escape_the_store_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(PublishError, match="relative path"):
        FileStore(tmp_path).put(name, b"x", MARKDOWN)


def test_file_store_writes_bytes_and_returns_file_urls(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "art")
    urls = store.put_many(
        [Artifact("a/b.md", b"# hi\n", MARKDOWN), Artifact("c.html", b"<p>", HTML)]
    )
    assert urls == [(tmp_path / "art/a/b.md").as_uri(), (tmp_path / "art/c.html").as_uri()]
    assert (tmp_path / "art/a/b.md").read_bytes() == b"# hi\n"
    assert not list((tmp_path / "art").rglob("*.partial"))


def test_file_store_error_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where a directory should be")
    with pytest.raises(PublishError, match="blocker"):
        FileStore(tmp_path / "blocker").put("x.md", b"x", MARKDOWN)


def test_publish_report_layout_and_verdict_json(tmp_path: Path) -> None:
    verdict = Verdict.of("kpi", [Check("net_bps", Status.WARN, 2.5, 2.7, 2.0, "low")])
    report = Report("kpi-gate", "r9", "# md\n", "<!DOCTYPE html>", verdict)
    urls = publish_report(report, FileStore(tmp_path), "r9")
    assert [u.rsplit("/", 3)[1:] for u in urls] == [
        ["kpi-gate", "r9", "report.md"],
        ["kpi-gate", "r9", "report.html"],
        ["kpi-gate", "r9", "verdict.json"],
    ]
    stored = json.loads((tmp_path / "kpi-gate/r9/verdict.json").read_text())
    assert stored["status"] == "WARN" and stored["reasons"] == ["net_bps: low"]
    no_verdict = Report("tuning", "r9", "", "", None)
    assert len(publish_report(no_verdict, FileStore(tmp_path), "r9")) == 2
    with pytest.raises(PublishError, match="one path segment"):
        publish_report(report, FileStore(tmp_path), "a/b")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (client_error("SlowDown", 503), True),
        (client_error("ThrottlingException", 400), True),
        (client_error("Whatever", 500), True),
        (client_error("TooManyRequests", 429), True),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), True),
        (client_error("NoSuchBucket", 404), False),
        (client_error("InvalidAccessKeyId", 403), False),
        (client_error("AccessDenied", 403), False),
    ],
)
def test_only_throttling_5xx_and_dropped_connections_are_retried(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_a_stored_object_that_differs_is_a_checksum_mismatch() -> None:
    data = b"report"
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    sha = "c2hh"
    ok = {"ContentLength": 6, "ETag": f'"{md5}"', "ContentType": JSON}
    S3Store._verify("w", ok, data, md5, sha, JSON)
    with pytest.raises(ChecksumMismatch, match="ETag"):
        S3Store._verify("w", {**ok, "ETag": '"0000"'}, data, md5, sha, JSON)
    with pytest.raises(ChecksumMismatch, match="SHA-256"):
        S3Store._verify("w", {**ok, "ChecksumSHA256": "b3RoZXI="}, data, md5, sha, JSON)
    with pytest.raises(ChecksumMismatch, match="stored 5 bytes"):
        S3Store._verify("w", {**ok, "ContentLength": 5}, data, md5, sha, JSON)
    with pytest.raises(ChecksumMismatch, match="content type"):
        S3Store._verify("w", {**ok, "ContentType": "text/plain"}, data, md5, sha, JSON)
