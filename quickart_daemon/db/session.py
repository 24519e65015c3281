"""Engine and sessions; migrations applied at start.

SQLite runs in WAL mode (readers never block the writer, so `quickart status` answers
while jobs run) with a busy timeout, so two processes writing at once wait instead of
failing. Nothing here is SQLite-only SQL: pragmas are applied only on SQLite.
"""

from __future__ import annotations

import fcntl
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import QuickArtError


def _migrations_dir() -> Path:
    # migrations/ at the repository top level, installed as the package quickart_daemon._migrations. Run from
    # a checkout (a git worktree on PYTHONPATH beside an editable install of another checkout) the checkout's
    # own come first, so the code and the migrations that match its models are always used together
    checkout = Path(__file__).resolve().parents[2] / "migrations"
    if (checkout / "env.py").is_file() and (checkout / "versions").is_dir():
        return checkout
    return Path(str(resources.files("quickart_daemon._migrations")))


def make_engine(url: str, busy_timeout_ms: int = 10_000) -> Engine:
    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    # PostgreSQL: test pooled connections before use, so a server restart costs one reconnect, not an error
    kwargs = {"connect_args": {"timeout": busy_timeout_ms / 1000}} if url.startswith("sqlite") \
        else {"pool_pre_ping": True}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
    return engine


#: the PostgreSQL advisory lock every migrating process takes (an arbitrary constant: "QArt")
MIGRATION_LOCK_KEY = 0x51417274


@contextmanager
def _migration_lock(engine: Engine):
    """Serialise migrations between processes: two commands starting on a fresh database must not both
    create the tables. SQLite: an flock on a file beside the database; PostgreSQL: an advisory lock
    taken inside the migration's transaction (see `upgrade`)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes
        yield


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply alembic migrations up to `revision` on this engine's database, one process at a time."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    try:
        with _migration_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except OperationalError as exc:
        raise QuickArtError(f"database {engine.url}: migration failed: {exc.orig}") from None


def connect(url: str, busy_timeout_ms: int = 10_000, migrate: bool = True) -> sessionmaker[Session]:
    """An engine for `url` with migrations applied, as a session factory."""
    engine = make_engine(url, busy_timeout_ms)
    if migrate:
        upgrade(engine)
    return sessionmaker(engine, expire_on_commit=False)
