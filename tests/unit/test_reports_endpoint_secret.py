"""An S3 endpoint password never reaches a message, a log line or a file.

Port 9 on 127.0.0.1 (discard) has no listener here: every request is refused at
once, so the store's retry path runs for real without a server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SECRET_MASK
from bot.exitcodes import ExitCode
from bot.profiles import load_settings
from reports.publish import RetryPolicy, S3Store, StoreUnavailable
from tests.unit import reports_helpers as h

SECRET = "EPSEKRET1234"  # pragma: allowlist secret
ENDPOINT = f"http://u:{SECRET}@127.0.0.1:9"
MMBOT = Path(sys.executable).parent / "mmbot"


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMBOT_", "AWS_", "PREFECT_"))}
    # HOME elsewhere: no ~/.aws profile may change what boto3 does
    env.update(HOME=str(home), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    return env


def test_store_masks_the_endpoint_password_in_its_fields_and_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings(
        None,
        overrides=[
            f"storage.s3_endpoint_url={ENDPOINT}",
            "secrets.s3_access_key_id=testing",
            "secrets.s3_secret_access_key=testing",
        ],
        env={},
    )
    store = S3Store.connect(
        "b", "x", settings.storage, settings.secrets, RetryPolicy(attempts=2, initial_s=0.01)
    )
    assert store.endpoint == f"http://u:{SECRET_MASK}@127.0.0.1:9"
    with pytest.raises(StoreUnavailable) as caught:
        store.put("a/report.md", b"# r\n", "text/markdown; charset=utf-8")
    assert "still failing after 2 attempts" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None  # botocore's unmasked message is not chained
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


def test_report_command_keeps_the_endpoint_password_out_of_every_output(tmp_path: Path) -> None:
    journal = h.write_journal(tmp_path / "run-7")
    done = subprocess.run(
        [
            str(MMBOT), "report", "kpi-gate",
            "--journal", str(journal),
            "--out", "s3://b/x",
            "--set", f"storage.s3_endpoint_url={ENDPOINT}",
            # two tries: the retry log line is exercised, the test stays under a second
            "--set", "storage.s3_retry_attempts=2",
        ],
        cwd=tmp_path,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == ExitCode.UNAVAILABLE, done.stderr
    assert "artifact_put_retry" in done.stderr  # the retry was logged ...
    assert "127.0.0.1:9" in done.stderr  # ... and the error names the endpoint
    assert SECRET not in done.stdout
    assert SECRET not in done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
