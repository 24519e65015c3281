"""affinity and per-node blocklist: a job may require a GPU slot or a node group; failures per
(job, node), so a node that keeps failing a job stops claiming it

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("requires_gpu", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("node_group", sa.String(64), nullable=True))
    op.create_table(
        "job_node_failures",
        sa.Column("job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("node", sa.String(255), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("job_node_failures")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("node_group")
        batch.drop_column("requires_gpu")
