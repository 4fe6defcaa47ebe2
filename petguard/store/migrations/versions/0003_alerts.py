"""Alerts from Alertmanager and other senders: evidence for detection, kept until resolved or expired.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 255
ENUM = 32


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("fingerprint", sa.String(NAME), primary_key=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("kind", sa.String(NAME), nullable=False),
        sa.Column("status", sa.String(ENUM), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("starts_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("sender", sa.String(NAME), nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_index("ix_alerts_status_expires_at", "alerts", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_status_expires_at", table_name="alerts")
    op.drop_table("alerts")
