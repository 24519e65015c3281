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


def test_tracker_statuses_come_with_0012_one_row_per_version_and_go_with_the_shot(db_url):
    """Issue 24 (statuses read back from the tracker): 0012 adds tracker_statuses to a database of 0011 with
    its shots and deliveries in place; one row per (shot, version, tracker); a shot's rows go with it;
    a downgrade to 0011 takes the table away and keeps the rest."""
    import pytest
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.exc import IntegrityError

    from quickart_daemon.db.session import _migrations_dir
    engine = make_engine(db_url)
    upgrade(engine, "0011")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO shots (show, seq, name, path, created_at) VALUES "
                          "('DEMO', 'sq010', 'sh0010', 'DEMO/sq010/sh0010', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO deliveries (shot_id, version, event, tracker, state, payload, attempts, "
                          "next_attempt_at, created_at) VALUES (1, 1, 'published', 'kitsu', 'done', '{}', 1, "
                          "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    assert "tracker_statuses" not in inspect(engine).get_table_names()
    upgrade(engine)
    row = ("INSERT INTO tracker_statuses (shot_id, version, tracker, status, name, color, approved, at, url, read_at) "
           "VALUES (1, 1, 'kitsu', :status, 'Done', '#22d160', :approved, CURRENT_TIMESTAMP, NULL, CURRENT_TIMESTAMP)")
    with engine.begin() as conn:
        conn.execute(text(row), {"status": "done", "approved": True})
        assert conn.execute(text("SELECT status, approved FROM tracker_statuses")).one() == ("done", True)
        assert conn.execute(text("SELECT COUNT(*) FROM deliveries")).scalar() == 1
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(row), {"status": "wfa", "approved": False})
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM shots"))
        assert conn.execute(text("SELECT COUNT(*) FROM tracker_statuses")).scalar() == 0
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011")
    assert "tracker_statuses" not in inspect(engine).get_table_names()
    assert "deliveries" in inspect(engine).get_table_names()
