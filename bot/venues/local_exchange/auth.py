"""Bybit v5 request signatures, as the server checks them.

A signed request carries X-BAPI-API-KEY, X-BAPI-TIMESTAMP (ms), X-BAPI-RECV-WINDOW
(ms) and X-BAPI-SIGN: hex HMAC-SHA256 with the API secret over
timestamp + api_key + recv_window + payload, where the payload is the raw query
string of a GET and the JSON body of a POST. Failures carry Bybit's retCodes:
10003 unknown key, 10004 bad signature, 10002 timestamp outside the window.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from bot.venues.local_exchange.venue import LocalVenueError


@dataclass(frozen=True, slots=True)
class ApiKey:
    key: str
    secret: str

    def __repr__(self) -> str:
        return f"ApiKey(key={self.key!r}, secret='**********')"


def signature(secret: str, timestamp: str, key: str, recv_window: str, payload: str) -> str:
    message = f"{timestamp}{key}{recv_window}{payload}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    headers: Mapping[str, str], payload: str, keys: Mapping[str, ApiKey], now_ms: int
) -> ApiKey:
    """The key that signed the request, or LocalVenueError with Bybit's retCode."""
    key = headers.get("X-BAPI-API-KEY", "")
    api_key = keys.get(key)
    if api_key is None:
        raise LocalVenueError(10003, "API key is invalid.")
    timestamp = headers.get("X-BAPI-TIMESTAMP", "")
    recv_window = headers.get("X-BAPI-RECV-WINDOW", "5000")
    if not (timestamp.isdigit() and recv_window.isdigit()):
        raise LocalVenueError(10002, "invalid request, please check your timestamp or recv_window")
    sent = headers.get("X-BAPI-SIGN", "")
    expected = signature(api_key.secret, timestamp, key, recv_window, payload)
    if not hmac.compare_digest(sent, expected):
        raise LocalVenueError(10004, "error sign! origin_string is not what was signed")
    # Bybit's rule: server_time - recv_window <= timestamp < server_time + 1000
    if not now_ms - int(recv_window) <= int(timestamp) < now_ms + 1000:
        raise LocalVenueError(
            10002,
            f"invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{now_ms}],recv_window[{recv_window}]",
        )
    return api_key
