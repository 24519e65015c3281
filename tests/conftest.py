"""Shared fixtures: a real studio folder and a real SQLite file per test, and a leak check."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from quickart_daemon.config import Config, load_config


@pytest.fixture
def make_config(tmp_path: Path):
    """Write a config.yaml in tmp_path (root: studio, database in state/) and load it."""

    def _make(**overrides) -> Config:
        data = {"root": "studio", "state_dir": "state", "database": {"url": "sqlite:///state/quickart.db"},
                "drop": {"settle_seconds": 0.3}, "queue": {"poll_interval": 0.2, "heartbeat_seconds": 1.0},
                "slots": {"gpus": "none"}}
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data))
        (tmp_path / "studio").mkdir(exist_ok=True)
        return load_config(path)

    return _make


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a non-daemon thread running (an observer or scheduler not stopped)."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    for t in leaked:
        t.join(timeout=5)
    leaked = [t.name for t in leaked if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"
