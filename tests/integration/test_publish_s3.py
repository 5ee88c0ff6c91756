"""S3Store against a real S3-speaking HTTP server (moto in server mode) on 127.0.0.1.

A tiny HTTP proxy sits in front of moto for the retry test: it answers the first
PUT of a chosen key with 503 SlowDown and forwards everything else.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from pydantic import SecretStr

from bot.config import SecretsConfig, StorageConfig
from reports.publish import (
    HTML,
    MARKDOWN,
    Artifact,
    ArtifactStore,
    BadCredentials,
    BucketNotFound,
    RetryPolicy,
    S3Store,
    StoreUnavailable,
)

pytestmark = pytest.mark.integration

KEY_ID = "AKIAMMBOTTESTKEY0001"  # pragma: allowlist secret
SECRET = "mmbot-test-secret-not-real"  # pragma: allowlist secret
FAST = RetryPolicy(attempts=4, initial_s=0.01, max_s=0.05)


@pytest.fixture()
def bucket(moto_url: str, request: pytest.FixtureRequest) -> str:
    name = "mmbot-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:12]
    client(moto_url).create_bucket(Bucket=name)
    return name


def client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )


def store_for(url: str, endpoint: str, key_id: str = KEY_ID) -> ArtifactStore:
    return ArtifactStore.from_url(
        url,
        StorageConfig(s3_endpoint_url=endpoint),
        SecretsConfig(s3_access_key_id=SecretStr(key_id), s3_secret_access_key=SecretStr(SECRET)),
        FAST,
    )


def test_upload_reads_back_bytes_checksum_and_content_type(moto_url: str, bucket: str) -> None:
    store = store_for(f"s3://{bucket}/releases/r1", moto_url)
    assert isinstance(store, S3Store)
    html = "<!DOCTYPE html><p>ünïcode ✓</p>".encode()
    urls = store.put_many(
        [
            Artifact("kpi-gate/run-1/report.html", html, HTML),
            Artifact("kpi-gate/run-1/report.md", b"# KPI gate\n", MARKDOWN),
        ]
    )
    assert urls == [
        f"s3://{bucket}/releases/r1/kpi-gate/run-1/report.html",
        f"s3://{bucket}/releases/r1/kpi-gate/run-1/report.md",
    ]
    got = client(moto_url).get_object(Bucket=bucket, Key="releases/r1/kpi-gate/run-1/report.html")
    assert got["Body"].read() == html
    assert got["ContentType"] == HTML
    assert got["ETag"].strip('"') == hashlib.md5(html, usedforsecurity=False).hexdigest()


def test_missing_bucket_is_a_typed_error_naming_the_bucket(moto_url: str) -> None:
    store = store_for("s3://no-such-bucket-mmbot/x", moto_url)
    with pytest.raises(BucketNotFound, match="no-such-bucket-mmbot"):
        store.put("a.md", b"x", MARKDOWN)


def _set_moto_auth(endpoint: str, count: str) -> None:
    # moto's documented switch: after `count` unauthenticated calls, check every key
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form body would be parsed away
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def test_unknown_access_key_is_bad_credentials(moto_url: str, bucket: str) -> None:
    store = store_for(f"s3://{bucket}/p", moto_url, key_id="AKIANOSUCHKEY0000000")
    _set_moto_auth(moto_url, "0")
    try:
        with pytest.raises(BadCredentials, match="InvalidAccessKeyId"):
            store.put("a.md", b"x", MARKDOWN)
    finally:
        _set_moto_auth(moto_url, "inf")


# --- a fault-injecting proxy in front of moto ---------------------------------------


@dataclass
class Faults:
    target: str
    failures_left: int
    status: int = 503
    code: str = "SlowDown"
    seen: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _proxy(upstream: str, faults: Faults) -> ThreadingHTTPServer:
    host, port = upstream.removeprefix("http://").split(":")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # so botocore's Expect: 100-continue is answered

        def log_message(self, format: str, *args: object) -> None:
            return

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            with faults.lock:
                inject = (
                    self.command == "PUT"
                    and self.path.startswith(faults.target)
                    and faults.failures_left > 0
                )
                if inject:
                    faults.failures_left -= 1
                status = faults.status if inject else 0
                faults.seen.append((self.command, self.path, status))
            if inject:
                payload = (
                    f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{faults.code}</Code>"
                    "<Message>injected by the test proxy</Message></Error>"
                ).encode()
                self.send_response(faults.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            # a HEAD answer has no body but keeps the object's length
            kept = response.getheader("Content-Length") if self.command == "HEAD" else None
            self.send_header("Content-Length", kept or str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_503_is_retried_and_the_upload_then_succeeds(moto_url: str, bucket: str) -> None:
    faults = Faults(target=f"/{bucket}/p/report.md", failures_left=1)
    proxy = _proxy(moto_url, faults)
    try:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        url = store_for(f"s3://{bucket}/p", endpoint).put("report.md", b"# ok\n", MARKDOWN)
    finally:
        proxy.shutdown()
    puts = [(path, status) for method, path, status in faults.seen if method == "PUT"]
    assert puts == [(f"/{bucket}/p/report.md", 503), (f"/{bucket}/p/report.md", 0)]
    assert url == f"s3://{bucket}/p/report.md"
    body = client(moto_url).get_object(Bucket=bucket, Key="p/report.md")["Body"].read()
    assert body == b"# ok\n"


def test_throttling_that_never_ends_gives_up_after_the_policy(moto_url: str, bucket: str) -> None:
    faults = Faults(target=f"/{bucket}/p/", failures_left=100, status=503, code="SlowDown")
    proxy = _proxy(moto_url, faults)
    try:
        endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
        with pytest.raises(StoreUnavailable, match="after 4 attempts"):
            store_for(f"s3://{bucket}/p", endpoint).put("x.md", b"x", MARKDOWN)
    finally:
        proxy.shutdown()
    assert sum(1 for method, _, _ in faults.seen if method == "PUT") == FAST.attempts


def test_audit_log_on_s3_keeps_each_record_as_its_own_object(moto_url: str, bucket: str) -> None:
    from reports.audit import S3AuditLog, audit_log

    store = store_for(f"s3://{bucket}/desk", moto_url)
    log = audit_log(store, "promotions")
    assert isinstance(log, S3AuditLog)
    # two writers on the same log (two promote runs): neither replaces the other's records
    other = audit_log(store_for(f"s3://{bucket}/desk", moto_url), "promotions")
    log.append({"event": "approved", "run_key": "a"})
    other.append({"event": "rejected", "run_key": "b"})
    log.append({"event": "promoted", "run_key": "a"})
    assert [r["event"] for r in other.records()] == ["approved", "rejected", "promoted"]
    keys = sorted(o["Key"] for o in client(moto_url).list_objects_v2(Bucket=bucket)["Contents"])
    assert [k.split("/")[-1][:9] for k in keys] == ["00000001-", "00000002-", "00000003-"]
    assert all(k.startswith("desk/audit/promotions/") and k.endswith(".json") for k in keys)
    assert log.url == f"s3://{bucket}/desk/audit/promotions/"


def test_audit_record_is_never_overwritten(moto_url: str, bucket: str) -> None:
    from reports.audit import audit_log

    store = store_for(f"s3://{bucket}/desk", moto_url)
    assert isinstance(store, S3Store)
    log = audit_log(store, "promotions")
    log.append({"event": "approved", "reviewer": "ana"})
    (name,) = store.names("audit/promotions")
    # a write to an existing record's name is refused by the server, not allowed to replace it
    assert not store.create(name, b'{"event": "forged"}', "x/y")
    assert log.records() == [{"event": "approved", "reviewer": "ana"}]


def test_audit_writers_racing_lose_no_record(moto_url: str, bucket: str) -> None:
    from reports.audit import audit_log

    def write(writer: str) -> None:
        log = audit_log(store_for(f"s3://{bucket}/race", moto_url), "promotions")
        for n in range(8):
            log.append({"writer": writer, "n": n})

    threads = [threading.Thread(target=write, args=(w,)) for w in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = audit_log(store_for(f"s3://{bucket}/race", moto_url), "promotions").records()
    assert sorted((r["writer"], r["n"]) for r in records) == [
        (w, n) for w in ("a", "b", "c") for n in range(8)
    ]
    for writer in ("a", "b", "c"):  # each writer's records in the order it wrote them
        assert [r["n"] for r in records if r["writer"] == writer] == list(range(8))
