"""card enrolment codes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "card_enrolment_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_card_enrolment_codes_attempts_not_negative")),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name=op.f("fk_card_enrolment_codes_credential_id_credentials"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_card_enrolment_codes_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_enrolment_codes")),
    )
    op.create_index(
        op.f("ix_card_enrolment_codes_code_hash"), "card_enrolment_codes", ["code_hash"], unique=False
    )
    op.create_index(
        op.f("ix_card_enrolment_codes_person_id"), "card_enrolment_codes", ["person_id"], unique=False
    )
    op.create_table(
        "card_code_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_card_code_failures_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_code_failures")),
    )
    op.create_index(
        op.f("ix_card_code_failures_site_id_at"), "card_code_failures", ["site_id", "at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_card_code_failures_site_id_at"), table_name="card_code_failures")
    op.drop_table("card_code_failures")
    op.drop_index(op.f("ix_card_enrolment_codes_person_id"), table_name="card_enrolment_codes")
    op.drop_index(op.f("ix_card_enrolment_codes_code_hash"), table_name="card_enrolment_codes")
    op.drop_table("card_enrolment_codes")
