"""A real Kitsu server (Zou) for the tracker tests: Zou in its own cached virtual environment, Debian's
redis-server, a database on the session's throw-away PostgreSQL cluster, gunicorn on a free loopback port.

Measured recipe: /work/shared/KITSU.md (zou 1.0.97 with gazu 1.3.1). The server's environment (about 600 MB:
opencv, numpy, gevent...) is kept apart from the project's and cached per user
(``~/.cache/quickart-test-zou/venv``, or ``$QUICKART_TEST_ZOU``), made on first use with ``python3 -m venv``
and pip; only when pip cannot reach the package registry are the tests skipped, saying so.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ZOU_VERSION = "1.0.97"
GAZU_VERSION = "1.3.1"
ADMIN_EMAIL = "admin@example.com"
INSTALL_REDIS = "redis-server is not installed: apt-get install -y redis-server (.ci/run does it)"

#: what pip says when the registry is out of reach (then the Kitsu tests skip; any other pip failure fails)
_OFFLINE = ("Could not find a version that satisfies", "NewConnectionError", "Temporary failure in name resolution",
            "Network is unreachable", "Connection refused", "ConnectTimeoutError", "ReadTimeoutError",
            "No matching distribution found")


class Offline(Exception):
    """pip could not reach the package registry: the Kitsu tests are skipped with this reason."""


def cache_dir() -> Path:
    return Path(os.environ.get("QUICKART_TEST_ZOU", Path.home() / ".cache" / "quickart-test-zou"))


def zou_venv() -> Path:
    """The cached virtual environment holding zou and gunicorn (made once, under a lock, with a marker
    written last: a half-made environment from an interrupted run is made again)."""
    root = cache_dir()
    venv = root / "venv"
    marker = venv / f".quickart-zou-{ZOU_VERSION}-gazu-{GAZU_VERSION}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", None) or shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q",
                            f"zou=={ZOU_VERSION}", f"gazu=={GAZU_VERSION}"], capture_output=True, text=True)
        if r.returncode != 0:
            text = r.stdout + r.stderr
            shutil.rmtree(venv, ignore_errors=True)
            tail = "\n".join(line for line in text.splitlines() if "is ignored" not in line)[-2000:]
            if any(s in text for s in _OFFLINE):
                raise Offline(f"cannot install zou=={ZOU_VERSION} (package registry unreachable?): {tail}")
            raise RuntimeError(f"pip install zou=={ZOU_VERSION} gazu=={GAZU_VERSION} failed:\n{tail}")
        marker.write_text("ok\n")
        return venv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, seconds: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening on {port}"
                               + (f":\n{log.read_text()[-3000:]}" if log and log.is_file() else ""))
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {seconds} s")


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop a child started in its own session: its process group, by its id."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


class KitsuServer:
    """Zou on loopback. `url` is what gazu.set_host takes; `kill()` and `start()` make an outage."""

    def __init__(self, postgres, folder: Path):
        self.venv = zou_venv()
        if not shutil.which("redis-server"):
            raise RuntimeError(INSTALL_REDIS)
        self.dir = folder
        self.log = folder / "gunicorn.log"
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.redis = self.gunicorn = None
        import psycopg
        with psycopg.connect(f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE zoudb")
        for sub in ("previews", "tmp", "hooks", "plugins"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        redis_port = free_port()
        self.env = {**os.environ, "DB_HOST": "127.0.0.1", "DB_PORT": str(postgres.port), "DB_USERNAME": "postgres",
                    "DB_PASSWORD": "unused", "DB_DATABASE": "zoudb", "DB_POOL_SIZE": "5", "DB_MAX_OVERFLOW": "5",
                    "KV_HOST": "127.0.0.1", "KV_PORT": str(redis_port), "PREVIEW_FOLDER": str(folder / "previews"),
                    "TMP_DIR": str(folder / "tmp"), "EVENT_HANDLERS_FOLDER": str(folder / "hooks"),
                    "PLUGIN_FOLDER": str(folder / "plugins"), "SECRET_KEY": secrets.token_hex(32),
                    "MAIL_ENABLED": "false", "CACHE_TYPE": "simple", "ENABLE_JOB_QUEUE": "false",
                    "PYTHONPATH": ""}
        try:
            self.redis = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly",
                 "no", "--dir", str(folder)], stdout=open(folder / "redis.log", "w"), stderr=subprocess.STDOUT,
                start_new_session=True, cwd=folder)
            _wait_port(redis_port, self.redis, 20, folder / "redis.log")
            init = ("from zou.cli import cli\n"
                    "cli.main(['init-db'], standalone_mode=False)\n"
                    "cli.main(['init-data'], standalone_mode=False)\n"
                    f"cli.main(['create-admin', {ADMIN_EMAIL!r}, '--password', {self.password!r}],"
                    " standalone_mode=False)\n")
            r = subprocess.run([str(self.venv / "bin" / "python"), "-c", init], env=self.env, cwd=folder,
                               capture_output=True, text=True, timeout=180)
            if r.returncode != 0:
                raise RuntimeError(f"zou init failed:\n{(r.stdout + r.stderr)[-3000:]}")
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self) -> None:
        """gunicorn on the server's port (again, after `kill`); returns when it answers."""
        self.gunicorn = subprocess.Popen(
            [str(self.venv / "bin" / "gunicorn"), "-b", f"127.0.0.1:{self.port}", "-w", "1", "--timeout", "120", "--graceful-timeout", "2",
             "--no-control-socket", "--error-logfile", str(self.log), "zou.app:app"],
            env=self.env, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as resp:
                    if json.load(resp).get("api") == "Zou":
                        return
            except OSError:
                pass
            if self.gunicorn.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Zou did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """The tracker goes away at once (SIGKILL of gunicorn's process group: no graceful shutdown)."""
        _stop(self.gunicorn, signal.SIGKILL)

    def stop(self) -> None:
        _stop(self.gunicorn)
        _stop(self.redis)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.is_file() else "(no server log)"

    def client(self):
        """A gazu client logged in as the admin (the test side's view of Kitsu)."""
        import gazu
        client = gazu.client.create_client(self.url)
        gazu.log_in(ADMIN_EMAIL, self.password, client=client)
        return client


def start_kitsu(postgres) -> KitsuServer:
    return KitsuServer(postgres, Path(tempfile.mkdtemp(prefix="quickart-kitsu-")))
