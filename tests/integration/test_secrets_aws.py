"""The AWS Secrets Manager provider against moto's server mode over HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from pydantic import SecretStr

from bot.config import Settings
from bot.runtime.clock import SimClock
from bot.runtime.secrets import (
    AwsSecrets,
    SecretDenied,
    SecretMalformed,
    SecretNotFound,
    SecretsError,
    SecretsUnreachable,
    exchange_credentials,
    secret_values,
    store_for,
)

pytestmark = pytest.mark.integration

S = 1_000_000_000
KEY = "aws-held-key-4444"  # pragma: allowlist secret
SECRET = "aws-held-secret-5555"  # pragma: allowlist secret
ROTATED = "aws-rotated-secret-6666"  # pragma: allowlist secret


@pytest.fixture(autouse=True)
def aws_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto takes any identity; boto3's chain finds this one in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMMBOTSECRETS0001")  # pragma: allowlist secret
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "moto-accepts-anything")  # pragma: allowlist secret
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def manager(endpoint: str) -> Any:
    return boto3.client("secretsmanager", endpoint_url=endpoint, region_name="us-east-1")


def created(endpoint: str, secret_id: str, text: str) -> str:
    manager(endpoint).create_secret(Name=secret_id, SecretString=text)
    return secret_id


def aws_settings(endpoint: str, secret_id: str, ttl_s: float = 60) -> Settings:
    return Settings(
        mode="live",
        secrets={
            "provider": "aws",
            "aws_secret_id": secret_id,
            "aws_endpoint_url": endpoint,
            "cache_ttl_s": ttl_s,
        },
    )


def test_credentials_and_redaction_come_from_the_secret(moto_url: str) -> None:
    pair = json.dumps({"api_key": KEY, "api_secret": SECRET})
    settings = aws_settings(moto_url, created(moto_url, "mmbot/read", pair))
    creds = exchange_credentials(settings)
    assert (creds.api_key, creds.api_secret) == (SecretStr(KEY), SecretStr(SECRET))
    assert secret_values(settings) == {KEY, SECRET}


def test_a_rotated_secret_is_seen_after_the_ttl(moto_url: str) -> None:
    secret_id = created(
        moto_url, "mmbot/rotate", json.dumps({"api_key": KEY, "api_secret": SECRET})
    )
    settings = aws_settings(moto_url, secret_id, ttl_s=60)
    clock = SimClock(0)
    store = store_for(settings, clock=clock)
    assert store.get("api_secret") == SecretStr(SECRET)
    rotated = json.dumps({"api_key": KEY, "api_secret": ROTATED})
    manager(moto_url).put_secret_value(SecretId=secret_id, SecretString=rotated)
    clock.advance_to(59 * S)
    assert store.get("api_secret") == SecretStr(SECRET)
    clock.advance_to(60 * S)
    assert store.get("api_secret") == SecretStr(ROTATED)
    assert [(a.provider, a.hit) for a in store.accesses] == [
        ("aws", False),
        ("aws", True),
        ("aws", False),
    ]


def test_a_missing_secret_names_the_id_and_endpoint(moto_url: str) -> None:
    settings = aws_settings(moto_url, "mmbot/never-created")
    with pytest.raises(SecretNotFound) as caught:
        exchange_credentials(settings)
    message = str(caught.value)
    assert "mmbot/never-created" in message and moto_url in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert secret_values(settings) == set()  # unreadable: nothing to redact, no failure


@pytest.mark.parametrize(
    "text", ["{not json aws-leaky-7777", '["aws-leaky-7777"]', '"aws-leaky-7777"']
)
def test_a_secret_that_is_not_a_json_object(moto_url: str, text: str) -> None:
    secret_id = created(moto_url, f"mmbot/bad-{hashlib.sha1(text.encode()).hexdigest()[:8]}", text)
    with pytest.raises(SecretMalformed, match="not a JSON object") as caught:
        AwsSecrets(secret_id, "us-east-1", moto_url).get("api_key")
    assert secret_id in str(caught.value) and "aws-leaky-7777" not in str(caught.value)


def test_an_unknown_name_in_the_secret(moto_url: str) -> None:
    secret_id = created(moto_url, "mmbot/unknown", json.dumps({"api_kee": "aws-leaky-8888"}))
    with pytest.raises(SecretsError, match="unknown secret 'api_kee'") as caught:
        AwsSecrets(secret_id, "us-east-1", moto_url).get("api_key")
    assert "aws-leaky-8888" not in str(caught.value)


def test_no_identity_to_open_it(
    moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(SecretDenied, match="no AWS credentials") as caught:
        AwsSecrets("mmbot/read", "us-east-1", moto_url).get("api_key")
    assert "mmbot/read" in str(caught.value)


def test_an_unreachable_endpoint() -> None:
    with socket.socket() as free:  # a port nothing listens on once this closes
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    endpoint = f"http://user:url-pass-9999@127.0.0.1:{port}"  # pragma: allowlist secret
    with pytest.raises(SecretsUnreachable) as caught:
        AwsSecrets("mmbot/read", "us-east-1", endpoint).get("api_key")
    message = str(caught.value)
    assert "mmbot/read" in message and f"127.0.0.1:{port}" in message
    assert "url-pass-9999" not in message


def test_a_secret_scheduled_for_deletion_is_refused_with_its_code(moto_url: str) -> None:
    secret_id = created(moto_url, "mmbot/deleted", json.dumps({"api_key": KEY}))
    manager(moto_url).delete_secret(SecretId=secret_id, RecoveryWindowInDays=7)
    with pytest.raises(SecretsError, match=r"refused \(InvalidRequestException\)") as caught:
        AwsSecrets(secret_id, "us-east-1", moto_url).get("api_key")
    assert KEY not in str(caught.value)


@pytest.fixture(scope="module")
def checking_moto() -> Iterator[str]:
    """A second moto server, in its own process, that checks identities (moto reads
    INITIAL_NO_AUTH_ACTION_COUNT once per process, so the shared one cannot)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_an_identity_the_server_does_not_know_is_denied(checking_moto: str) -> None:
    with pytest.raises(SecretDenied, match="access denied") as caught:
        AwsSecrets("mmbot/read", "us-east-1", checking_moto).get("api_key")
    message = str(caught.value)
    assert "mmbot/read" in message and "secretsmanager:GetSecretValue" in message
    assert "moto-accepts-anything" not in message
