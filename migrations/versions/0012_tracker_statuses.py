"""tracker_statuses: each version's status and approval as the production tracker has it (read back by the
daemon, shown beside the version on the web page and in `quickart status`)

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracker_statuses",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("shot_id", sa.Integer(), sa.ForeignKey("shots.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tracker", sa.String(64), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("color", sa.String(16), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("read_at", sa.DateTime(), nullable=False),
    )
    op.create_index("uq_tracker_statuses_version", "tracker_statuses", ["shot_id", "version", "tracker"],
                    unique=True)


def downgrade() -> None:
    op.drop_index("uq_tracker_statuses_version", table_name="tracker_statuses")
    op.drop_table("tracker_statuses")
