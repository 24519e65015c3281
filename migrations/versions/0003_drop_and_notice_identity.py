"""a drop's identity and a notice's identity are unique: many nodes watching one root record each once

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("drops", sa.Column("key", sa.String(128), nullable=True))
    op.execute("UPDATE drops SET key = 'before-0003:' || id")  # older drops: each its own identity
    op.create_index("uq_drops_shot_key", "drops", ["shot_id", "key"], unique=True)
    op.add_column("notices", sa.Column("key", sa.String(64), nullable=True))
    op.execute("UPDATE notices SET key = 'before-0003:' || id")
    op.create_index("uq_notices_key", "notices", ["key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_notices_key", table_name="notices")
    op.drop_index("uq_drops_shot_key", table_name="drops")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("key")
    with op.batch_alter_table("drops") as batch:
        batch.drop_column("key")
