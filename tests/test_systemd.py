"""The unit file passes `systemd-analyze verify` with no warning at all."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "systemd" / "quickart.service"
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def _verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # verify checks that ExecStart exists: point it at the quickart of this environment
    quickart = shutil.which("quickart") or str(Path(__file__).parent.parent / ".venv" / "bin" / "quickart")
    unit = tmp_path / "quickart.service"
    unit.write_text(text.replace("/opt/quickart/venv/bin/quickart", quickart))
    return subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_unit_verifies_cleanly(tmp_path):
    result = _verify(UNIT.read_text(), tmp_path)
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_unit_declares_notify_watchdog_and_hardening():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=quickart", "ProtectSystem=strict",
                 "ReadWritePaths=", "NoNewPrivileges=yes", "PrivateTmp=yes", "KillMode=mixed"):
        assert line in text, f"{line} missing from {UNIT.name}"


def test_verify_catches_a_misspelt_key(tmp_path):
    """The check above can fail: a typo in a hardening key is reported."""
    result = _verify(UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"), tmp_path)
    assert "ProtectSystm" in result.stderr
