"""resident self-enrolment (sign-in identity, terms, age limits, self-enrolment groups)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("min_age", sa.SmallInteger(), server_default="18", nullable=False))
        batch.add_column(
            sa.Column("min_age_with_consent", sa.SmallInteger(), server_default="15", nullable=False)
        )
    with op.batch_alter_table("persons") as batch:
        batch.add_column(sa.Column("birth_date", sa.Date(), nullable=True))
        batch.add_column(sa.Column("guardian_consent_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("guardian_consent_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("oidc_issuer", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("oidc_subject", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        op.f("ix_persons_oidc_issuer_oidc_subject"), "persons", ["oidc_issuer", "oidc_subject"], unique=True
    )
    with op.batch_alter_table("access_groups") as batch:
        batch.add_column(sa.Column("self_enrolment", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "terms_acceptances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_terms_acceptances_person_id_persons"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terms_acceptances")),
        sa.UniqueConstraint("person_id", "version", name=op.f("uq_terms_acceptances_person_id_version")),
    )
    op.create_index(op.f("ix_terms_acceptances_person_id"), "terms_acceptances", ["person_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_terms_acceptances_person_id"), table_name="terms_acceptances")
    op.drop_table("terms_acceptances")
    with op.batch_alter_table("access_groups") as batch:
        batch.drop_column("self_enrolment")
    op.drop_index(op.f("ix_persons_oidc_issuer_oidc_subject"), table_name="persons")
    with op.batch_alter_table("persons") as batch:
        for column in (
            "enrolled_at",
            "oidc_subject",
            "oidc_issuer",
            "guardian_consent_by",
            "guardian_consent_at",
            "birth_date",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("min_age_with_consent")
        batch.drop_column("min_age")
