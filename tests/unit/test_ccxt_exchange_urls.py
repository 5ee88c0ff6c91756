"""Where ccxt_exchange points ccxt: testnet, another server, public-only."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from bot.runtime.secrets import Credentials
from bot.venues.exchange import SequencedBybit, ccxt_exchange, pointed_at

CREDS = Credentials(SecretStr("k"), SecretStr("s"))


def urls_of(**kw: object) -> dict:
    async def build() -> dict:
        exchange = ccxt_exchange("bybit", CREDS, **kw)  # type: ignore[arg-type]
        try:
            return {"api": exchange.urls["api"], "key": exchange.apiKey, "cls": type(exchange)}
        finally:
            await exchange.close()

    return asyncio.run(build())


def test_testnet_is_ccxt_sandbox_mode() -> None:
    got = urls_of(testnet=True)
    assert got["api"]["public"] == "https://api-testnet.{hostname}"
    assert (
        got["api"]["ws"]["public"]["linear"] == "wss://stream-testnet.{hostname}/v5/public/linear"
    )
    assert got["cls"] is SequencedBybit and got["key"] == "k"


def test_another_server_takes_every_url_and_keeps_the_stream_paths() -> None:
    api = urls_of(url="http://127.0.0.1:8765/")["api"]
    assert api["public"] == api["private"] == "http://127.0.0.1:8765"
    assert api["ws"]["public"]["linear"] == "ws://127.0.0.1:8765/v5/public/linear"
    assert api["ws"]["private"]["contract"] == "ws://127.0.0.1:8765/v5/private"
    assert pointed_at({"ws": "wss://x/v5/private"}, "https://h:1") == {"ws": "wss://h:1/v5/private"}


def test_public_data_needs_no_credentials_and_unknown_venues_are_named() -> None:
    async def build() -> str:
        exchange = ccxt_exchange("bybit", None)
        try:
            return str(exchange.apiKey)
        finally:
            await exchange.close()

    assert asyncio.run(build()) in ("", "None")
    with pytest.raises(ValueError, match="'nosuchvenue' is not an exchange ccxt knows"):
        ccxt_exchange("nosuchvenue", CREDS)
