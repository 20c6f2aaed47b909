"""alarms keep what the agent said (detail) apart from the caretaker's acknowledgement comment

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_alarms = sa.table(
    "alarms",
    sa.column("comment", sa.Text()),
    sa.column("detail", sa.Text()),
    sa.column("acknowledged_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("alarms") as batch:
        batch.add_column(sa.Column("detail", sa.Text(), server_default="", nullable=False))
    # Until now `comment` held the agent's words until someone acknowledged; move those to `detail`.
    op.execute(
        _alarms.update()
        .where(_alarms.c.acknowledged_at.is_(None))
        .values(detail=_alarms.c.comment, comment="")
    )


def downgrade() -> None:
    op.execute(_alarms.update().where(_alarms.c.acknowledged_at.is_(None)).values(comment=_alarms.c.detail))
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("detail")
