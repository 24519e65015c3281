"""`quickart demo`: a demo studio, the real daemon on it, one real drop, the results.

It writes a config and an empty studio, starts `quickart daemon` as its own process
(exactly what systemd would run), drops a synthetic shot into the watched folder,
waits for the job to finish, prints the outputs, then stops the daemon with SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from .config import load_config
from .errors import QuickArtError

DEMO_CONFIG = """\
# Demo studio config written by `quickart demo` (see the repository's config.yaml for every setting).
root: studio
state_dir: state
database:
  url: sqlite:///state/quickart.db
models_dir: {models}
drop:
  settle_seconds: 1.0
watch:
  mode: auto
  rescan_seconds: 30
queue:
  poll_interval: 0.5
  heartbeat_seconds: 2
"""


def _models_dir() -> Path:
    # the checkout's models/ folder when run from it, else next to the config
    here = Path.cwd() / "models"
    return here.resolve() if here.is_dir() else Path("models")


def run_demo(folder: Path, timeout: float = 600) -> int:
    from .nodes import NodeRegistry
    from .queue import FINISHED, open_queue
    from .summary import report_job
    from .tools.synth import write_demo_studio

    folder = folder.resolve()
    (folder / "studio").mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    if not config_path.exists():
        config_path.write_text(DEMO_CONFIG.format(models=_models_dir()))
    cfg = load_config(config_path)
    jq = open_queue(cfg)
    before = {j.id for j in jq.list(limit=10_000)}
    print(f"demo studio: {cfg.root}\nstarting the daemon (log: {folder / 'daemon.log'})", flush=True)
    log = open(folder / "daemon.log", "ab")
    daemon = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config_path), "daemon"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(lambda: any(n.pid == daemon.pid for n in NodeRegistry(jq.db, jq).list()), 60, daemon, "the daemon to start")
        # a new shot name each run, so every demo is a fresh drop
        n = len([p for p in (cfg.root / "DEMO" / "sq010").glob("sh*")]) if (cfg.root / "DEMO" / "sq010").is_dir() else 0
        shot_name = f"sh{(n + 1) * 10:04d}"
        print(f"dropping DEMO/sq010/{shot_name} (rough pencil keys 1001-1013 on twos, colour reference, fx layer)", flush=True)
        write_demo_studio(cfg.root, shot=shot_name)
        job = _wait_for(lambda: next((j for j in jq.list(shot=shot_name) if j.id not in before
                                      and j.state in FINISHED), None),
                        timeout, daemon, "the job to finish", lambda: _progress(jq, shot_name))
        print()
        code = report_job(jq, job)
        if code == 0:
            print("\nopen contact.png to look at the shot; import the .otio in Resolve, Hiero, RV or Kdenlive.")
            print(f"`quickart --config {config_path} status` shows the queue.")
        return code
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
        log.close()
        print("daemon stopped.")


_last_progress = ""


def _progress(jq, shot_name: str) -> None:
    global _last_progress
    jobs = jq.list(shot=shot_name)
    if jobs:
        j = jobs[0]
        line = f"  job {j.id}: {j.state.value} {j.current_stage or ''} {j.progress * 100:3.0f}%"
        if line != _last_progress:  # a terminal shows one updating line; a log gets one line per change
            print(("\r" if sys.stdout.isatty() else "") + line + ("   " if sys.stdout.isatty() else "\n"),
                  end="", flush=True)
            _last_progress = line


def _wait_for(check, timeout: float, daemon: subprocess.Popen, what: str, tick=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if daemon.poll() is not None:
            raise QuickArtError(f"the daemon exited (status {daemon.returncode}) while waiting for {what}; see daemon.log")
        if tick:
            tick()
        time.sleep(0.5)
    raise QuickArtError(f"timed out after {timeout:.0f}s waiting for {what}")
