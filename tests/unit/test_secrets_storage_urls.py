"""Passwords inside every storage URL, the S3 endpoint's included, are secrets."""

from __future__ import annotations

from bot.profiles import load_settings
from bot.runtime.secrets import secret_values


def test_every_storage_url_password_is_a_secret_value() -> None:
    settings = load_settings(
        None,
        overrides=[
            "storage.redis_url=redis://:REDISPW77@h/0",
            "storage.artifacts_url=s3://u:ARTPW88@b/p",  # pragma: allowlist secret
            "storage.s3_endpoint_url=http://u:EPSEKRET1234@127.0.0.1:9",  # pragma: allowlist secret
        ],
        env={},
    )
    assert secret_values(settings, env={}) == {"REDISPW77", "ARTPW88", "EPSEKRET1234"}


def test_an_endpoint_without_password_adds_nothing() -> None:
    settings = load_settings(None, overrides=["storage.s3_endpoint_url=http://h:9000"], env={})
    assert secret_values(settings, env={}) == set()
