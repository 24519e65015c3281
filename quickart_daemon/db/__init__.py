"""The database: SQLAlchemy models (models.py), the engine/session factory (session.py) and
every read as plain SQL (reads.py).

Migrations live in the top-level ``migrations/`` folder (alembic); the schema only uses
portable SQL so the same code runs on PostgreSQL. Nothing is imported here, so
``db.reads`` loads without SQLAlchemy (the status commands' fast start).
"""
