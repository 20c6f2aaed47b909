"""alarm notifications to the caretaker on call: notifications, noticed alarms and their outbox

Alarms already in the database are marked as noticed without a notification, so the first `central serve`
after the upgrade does not mail the caretaker about the whole history.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alarm_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("door_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("last_repeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("repeats >= 0", name=op.f("ck_alarm_notifications_repeats_not_negative")),
        sa.ForeignKeyConstraint(
            ["alarm_id"],
            ["alarms.id"],
            name=op.f("fk_alarm_notifications_alarm_id_alarms"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["door_id"], ["doors.id"], name=op.f("fk_alarm_notifications_door_id_doors"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_alarm_notifications_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_notifications")),
        sa.UniqueConstraint("alarm_id", name=op.f("uq_alarm_notifications_alarm_id")),
    )
    op.create_index(op.f("ix_alarm_notifications_door_id"), "alarm_notifications", ["door_id"], unique=False)
    op.create_index(
        op.f("ix_alarm_notifications_site_id_kind_created_at"),
        "alarm_notifications",
        ["site_id", "kind", "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_alarm_notifications_open",
        "alarm_notifications",
        ["id"],
        unique=False,
        sqlite_where=sa.text("closed_at IS NULL"),
        postgresql_where=sa.text("closed_at IS NULL"),
    )
    op.create_table(
        "noticed_alarms",
        sa.Column("alarm_id", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=True),
        sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alarm_id"], ["alarms.id"], name=op.f("fk_noticed_alarms_alarm_id_alarms"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["alarm_notifications.id"],
            name=op.f("fk_noticed_alarms_notification_id_alarm_notifications"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("alarm_id", name=op.f("pk_noticed_alarms")),
    )
    op.create_index(
        op.f("ix_noticed_alarms_notification_id"), "noticed_alarms", ["notification_id"], unique=False
    )
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("escalation", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_notification_outbox_attempts_not_negative")),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["alarm_notifications.id"],
            name=op.f("fk_notification_outbox_notification_id_alarm_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_notification_outbox_message_id")),
    )
    op.create_index(
        op.f("ix_notification_outbox_notification_id"),
        "notification_outbox",
        ["notification_id"],
        unique=False,
    )
    op.create_index(
        "ix_notification_outbox_pending",
        "notification_outbox",
        ["id"],
        unique=False,
        sqlite_where=sa.text("delivered_at IS NULL AND cancelled_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL AND cancelled_at IS NULL"),
    )
    op.execute(
        "INSERT INTO noticed_alarms (alarm_id, notification_id, noticed_at) "
        "SELECT id, NULL, CURRENT_TIMESTAMP FROM alarms"
    )


def downgrade() -> None:
    op.drop_index("ix_notification_outbox_pending", table_name="notification_outbox")
    op.drop_index(op.f("ix_notification_outbox_notification_id"), table_name="notification_outbox")
    op.drop_table("notification_outbox")
    op.drop_index(op.f("ix_noticed_alarms_notification_id"), table_name="noticed_alarms")
    op.drop_table("noticed_alarms")
    op.drop_index("ix_alarm_notifications_open", table_name="alarm_notifications")
    op.drop_index(op.f("ix_alarm_notifications_site_id_kind_created_at"), table_name="alarm_notifications")
    op.drop_index(op.f("ix_alarm_notifications_door_id"), table_name="alarm_notifications")
    op.drop_table("alarm_notifications")
