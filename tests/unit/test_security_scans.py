"""`make security` can fail: the scanners it runs, with its options, catch a planted leak
and a planted unsafe call (a scan that passes everything would prove nothing)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
# a made-up AWS key pair in AWS's documented example shape, never a real credential
PLANTED_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
PLANTED_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"  # pragma: allowlist secret


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def test_secret_scan_flags_a_committed_credential(tmp_path: Path) -> None:
    leak = tmp_path / "settings.py"
    leak.write_text(f'key = "{PLANTED_KEY}"\nsecret = "{PLANTED_SECRET}"\n')
    clean = tmp_path / "clean.py"
    clean.write_text('provider = "env"\n')
    flagged = _run(str(BIN / "detect-secrets-hook"), str(leak))
    assert flagged.returncode == 1
    assert "AWS Access Key" in flagged.stdout and f"{leak}:1" in flagged.stdout
    assert _run(str(BIN / "detect-secrets-hook"), str(clean)).returncode == 0


def test_bandit_flags_a_medium_finding(tmp_path: Path) -> None:
    unsafe = tmp_path / "loader.py"
    unsafe.write_text("import pickle\n\n\ndef load(raw: bytes) -> object:\n"
                      "    return pickle.loads(raw)\n")
    result = _run(str(BIN / "bandit"), "-q", "--severity-level", "medium", str(unsafe))
    assert result.returncode == 1
    assert "B301" in result.stdout
