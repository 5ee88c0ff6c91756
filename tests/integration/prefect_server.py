"""A real `prefect server start` on 127.0.0.1 for the deployment and browser tests.

The server is a subprocess on a free port with its own PREFECT_HOME (a temporary
directory: database, logs), analytics off, and PREFECT_UI_API_URL pointing the UI at
its own /api (a port other than 4200 needs it, or the UI cannot reach the API).
`env` is what a client process (the CLI, a flow run) needs to talk to it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFECT = Path(sys.executable).with_name("prefect")
# two cores shared by the suite: the server takes 30-60 s to answer here
STARTUP_S = 240.0


@dataclass(frozen=True, slots=True)
class Server:
    url: str  # http://127.0.0.1:<port>
    env: dict[str, str]

    @property
    def api(self) -> str:
        return f"{self.url}/api"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def prefect_server(home: Path) -> Iterator[Server]:
    """A server for the block; stopped (SIGTERM, then SIGKILL) when it ends."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"{url}/api",
        "PREFECT_UI_API_URL": f"{url}/api",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
    }
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port),
         "--analytics-off", "--no-services"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + STARTUP_S
        while not _healthy(f"{url}/api"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"prefect server did not start on {url}: {(home / 'server.log').read_text()}"
                )
            time.sleep(0.5)
        yield Server(url, env)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def prefect_cli(
    server: Server, *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`prefect <args>` against the server, from the repository root."""
    return subprocess.run(
        [str(PREFECT), "--no-prompt", *args], env=server.env, cwd=REPO, capture_output=True,
        text=True, timeout=timeout, check=False,
    )  # fmt: skip
