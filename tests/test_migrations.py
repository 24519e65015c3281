"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from quickart_daemon.db.models import Base
from quickart_daemon.db.session import make_engine, upgrade


def test_upgrade_empty_database_to_head_matches_models(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    upgrade(engine)  # a second upgrade finds nothing to do
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations differ; add a migration: {diff}"
        assert MigrationContext.configure(conn).get_current_revision() is not None
    assert set(inspect(engine).get_table_names()) >= {"shots", "drops", "jobs", "stage_runs", "artifacts", "nodes", "notices"}


def test_upgrade_twice_is_harmless_and_wal_is_on(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=1234)
    upgrade(engine)
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 1234
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_shot_paths_become_relative_to_the_studio_root(db_url):
    """Issue 23 P1: rows of a database made before 0008 hold the absolute folder of the node that saw
    the shot first; after the upgrade they hold the folder relative to the studio root."""
    engine = make_engine(db_url)
    upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO shots (show, seq, name, path, created_at) VALUES "
                          "('DEMO', 'sq010', 'sh0010', '/mnt/studio/DEMO/sq010/sh0010', CURRENT_TIMESTAMP), "
                          "('DEMO', 'sq010', 'sh0020', '/srv/DEMO/DEMO/sq010/sh0020', CURRENT_TIMESTAMP), "
                          "('ODD', 'a', 'b', '/somewhere/else', CURRENT_TIMESTAMP)"))
    upgrade(engine)
    with engine.connect() as conn:
        paths = dict(conn.execute(text("SELECT name, path FROM shots")).all())
    assert paths == {"sh0010": "DEMO/sq010/sh0010", "sh0020": "DEMO/sq010/sh0020", "b": "/somewhere/else"}
