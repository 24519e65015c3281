"""nodes: GPUs, version and state (up | down | stopped), for many render nodes on one database

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("gpus", sa.Integer(), nullable=True))
    op.add_column("nodes", sa.Column("version", sa.String(32), nullable=True))
    op.add_column("nodes", sa.Column("state", sa.String(16), nullable=True))
    op.execute("UPDATE nodes SET gpus = 0, state = CASE WHEN stopped_at IS NULL THEN 'up' ELSE 'stopped' END")


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("state")
        batch.drop_column("version")
        batch.drop_column("gpus")
