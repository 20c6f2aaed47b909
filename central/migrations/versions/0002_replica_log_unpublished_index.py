"""partial index on unpublished replica changes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPUBLISHED = sa.text("published_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_replica_changes_unpublished",
        "replica_changes",
        ["site_id", "seq"],
        unique=False,
        sqlite_where=UNPUBLISHED,
        postgresql_where=UNPUBLISHED,
    )


def downgrade() -> None:
    op.drop_index("ix_replica_changes_unpublished", table_name="replica_changes")
