"""The database: SQLAlchemy models (models.py) and the engine/session factory (session.py).

Migrations live in the top-level ``migrations/`` folder (alembic); the schema only uses
portable SQL so the same code runs on PostgreSQL.
"""

from .models import Artifact, Base, Drop, JobRow, Node, Notice, Shot, StageRun
from .session import connect, upgrade

__all__ = ["Artifact", "Base", "Drop", "JobRow", "Node", "Notice", "Shot", "StageRun", "connect", "upgrade"]
