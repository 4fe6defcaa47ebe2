"""Evacuation target hints: each move's hint, its source and note, the host asked for, and whether it
fell back to the scheduler's choice (existing rows get no hint); reserved failover hosts, one row each.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 255
#: A hint note (a VARCHAR, not TEXT: MySQL refuses a literal default on TEXT columns).
NOTE = 1024


def upgrade() -> None:
    op.create_table(
        "reserved_hosts",
        sa.Column("host", sa.String(NAME), primary_key=True),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=True),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    with op.batch_alter_table("moves") as batch:
        batch.add_column(sa.Column("hint", sa.String(NAME), nullable=False, server_default=""))
        batch.add_column(sa.Column("hint_source", sa.String(NAME), nullable=False, server_default=""))
        batch.add_column(sa.Column("hint_note", sa.String(NOTE), nullable=False, server_default=""))
        batch.add_column(sa.Column("target_host", sa.String(NAME), nullable=True))
        batch.add_column(sa.Column("fell_back", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_table("reserved_hosts")
    with op.batch_alter_table("moves") as batch:
        for column in ("fell_back", "target_host", "hint_note", "hint_source", "hint"):
            batch.drop_column(column)
