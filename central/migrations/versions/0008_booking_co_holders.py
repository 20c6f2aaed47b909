"""booking co-holders (named people who may use a booking like its holder)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "booking_co_holders",
        sa.Column("booking_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booking_co_holders_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_booking_co_holders_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", "person_id", name=op.f("pk_booking_co_holders")),
    )
    op.create_index(
        op.f("ix_booking_co_holders_person_id"), "booking_co_holders", ["person_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_booking_co_holders_person_id"), table_name="booking_co_holders")
    op.drop_table("booking_co_holders")
