"""shot folders relative to the studio root: a studio copied or mounted at another path (or a
node that mounts the root elsewhere) finds its shots by name; the folder on a node is its root
joined with this path (`shot.shot_folder`)

Rows written before kept the absolute path of the node that saw the shot first. The relative
path is the tail of that path from the shot's show folder on (the naming convention always
starts a shot's path with its show unless a studio changed it; such rows are left as they are
and rewritten by the next scan, which looks shots up by name).

Revision ID: 0008
Revises: 0007
"""
from pathlib import PurePosixPath

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def relative_shot_path(path: str, show: str, name: str) -> str | None:
    parts = PurePosixPath(path).parts
    if not PurePosixPath(path).is_absolute():
        return None
    starts = [i for i, part in enumerate(parts) if part == show and name in parts[i + 1:]]
    return "/".join(parts[starts[-1]:]) if starts else None


def upgrade() -> None:
    conn = op.get_bind()
    shots = sa.table("shots", sa.column("id", sa.Integer), sa.column("show", sa.String),
                     sa.column("name", sa.String), sa.column("path", sa.String))
    rows = conn.execute(sa.select(shots.c.id, shots.c.show, shots.c.name, shots.c.path)).all()
    taken = {row.path for row in rows}
    for row in rows:
        rel = relative_shot_path(row.path, row.show, row.name)
        if rel is not None and rel not in taken:
            conn.execute(shots.update().where(shots.c.id == row.id).values(path=rel))
            taken.add(rel)


def downgrade() -> None:
    pass  # the absolute paths are not known any more; relative paths still name the shots
