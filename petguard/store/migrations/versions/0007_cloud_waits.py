"""Moves that wait for the cloud: why (``waiting``, "" when not waiting) and since when (``waiting_since``),
so that ``incident show`` tells a wait from a failure and the wait's deadline survives a restart.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: A wait's reason (a VARCHAR, not TEXT: MySQL refuses a literal default on TEXT columns).
NOTE = 1024


def upgrade() -> None:
    with op.batch_alter_table("moves") as batch:
        batch.add_column(sa.Column("waiting", sa.String(NOTE), nullable=False, server_default=""))
        batch.add_column(sa.Column("waiting_since", sa.Double, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("moves") as batch:
        for column in ("waiting_since", "waiting"):
            batch.drop_column(column)
