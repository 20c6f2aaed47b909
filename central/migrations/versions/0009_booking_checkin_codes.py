"""booking check-in codes (typed at the site's kiosk)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_bookings = sa.table(
    "bookings",
    sa.column("id", sa.Integer()),
    sa.column("room_id", sa.Integer()),
    sa.column("status", sa.String()),
    sa.column("ends_at", sa.DateTime(timezone=True)),
    sa.column("checkin_code", sa.String()),
)
_rooms = sa.table("rooms", sa.column("id", sa.Integer()), sa.column("site_id", sa.Integer()))


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("checkin_code", sa.String(length=6), nullable=True))
    op.create_index(op.f("ix_bookings_checkin_code"), "bookings", ["checkin_code"], unique=False)
    _codes_for_live_bookings()


def _codes_for_live_bookings() -> None:
    """Bookings still to come get their code now, unique within their site, as new ones do."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_bookings.c.id, _rooms.c.site_id)
        .join(_rooms, _rooms.c.id == _bookings.c.room_id)
        .where(
            _bookings.c.status.in_(("confirmed", "checked_in")),
            _bookings.c.ends_at > datetime.now(UTC),
        )
        .order_by(_bookings.c.id)
    ).all()
    taken: dict[int, set[str]] = {}
    for booking_id, site_id in rows:
        used = taken.setdefault(site_id, set())
        code = f"{secrets.randbelow(1_000_000):06d}"
        while code in used:
            code = f"{secrets.randbelow(1_000_000):06d}"
        used.add(code)
        bind.execute(sa.update(_bookings).where(_bookings.c.id == booking_id).values(checkin_code=code))


def downgrade() -> None:
    op.drop_index(op.f("ix_bookings_checkin_code"), table_name="bookings")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("checkin_code")
