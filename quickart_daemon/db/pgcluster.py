"""A throw-away PostgreSQL cluster (initdb + pg_ctl in a temporary folder) for tests and benchmarks.

Loopback only, on a free port, trust authentication, fsync off: nothing here is for production (a
studio runs one real PostgreSQL server; see the README). The server refuses to run as root, so as
root its programs run as the `postgres` user (runuser).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

INSTALL_HINT = "PostgreSQL is not installed (no initdb/pg_ctl): apt-get install -y postgresql"


def pg_program(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else in Debian's versioned folder (newest version)."""
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)),
                                      None)


class PostgresCluster:
    """Started by the constructor; `stop` stops it and removes its folder."""

    def __init__(self):
        initdb, pg_ctl = pg_program("initdb"), pg_program("pg_ctl")
        if not (initdb and pg_ctl):
            raise RuntimeError(INSTALL_HINT)
        self.pg_ctl = pg_ctl
        self.dir = Path(tempfile.mkdtemp(prefix="quickart-pg-"))
        self.data = self.dir / "data"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        opts = (f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self.pg_ctl_args = ["-D", str(self.data), "-o", opts, "-l", str(self.dir / "server.log")]
        self.start()

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, cwd=self.dir)

    def start(self) -> None:
        self._run(self.pg_ctl, "start", "-w", "-t", "60", *self.pg_ctl_args)

    def restart(self) -> None:
        """pg_ctl restart -m fast: every client connection is cut."""
        self._run(self.pg_ctl, "restart", "-w", "-m", "fast", *self.pg_ctl_args)

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "stop", "-w", "-m", "fast", "-D", str(self.data))
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
