"""petguard-agent: the hosts' last heartbeats, the agents' domain events, and each server's
instance-health state (restart limits survive a daemon restart).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 255
ENUM = 32
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "agent_hosts",
        sa.Column("host", sa.String(NAME), primary_key=True),
        sa.Column("sender", sa.String(NAME), nullable=False),
        sa.Column("last_heartbeat", sa.Double, nullable=False),
        sa.Column("sent_at", sa.Double, nullable=False),
        sa.Column("interval", sa.Double, nullable=False),
        sa.Column("libvirt_connected", sa.Boolean, nullable=False),
        sa.Column("domains", sa.Text, nullable=False),
        sa.Column("buffered", sa.Integer, nullable=False),
        sa.Column("dropped", sa.Integer, nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
    )
    op.create_table(
        "agent_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("event_id", sa.String(NAME), nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("domain_uuid", sa.String(64), nullable=False),
        sa.Column("domain_name", sa.String(NAME), nullable=False),
        sa.Column("kind", sa.String(ENUM), nullable=False),
        sa.Column("detail", sa.String(64), nullable=False),
        sa.Column("processed_at", sa.Double, nullable=True),
        sa.UniqueConstraint("host", "event_id", name="uq_agent_events_host_event_id"),
    )
    op.create_index("ix_agent_events_processed_at_id", "agent_events", ["processed_at", "id"])
    op.create_index("ix_agent_events_domain_uuid_at", "agent_events", ["domain_uuid", "at"])
    op.create_table(
        "instance_health",
        sa.Column("server_id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("phase", sa.String(ENUM), nullable=False),
        sa.Column("pending", sa.Boolean, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_index("ix_instance_health_pending", "instance_health", ["pending"])


def downgrade() -> None:
    op.drop_index("ix_instance_health_pending", table_name="instance_health")
    op.drop_table("instance_health")
    op.drop_index("ix_agent_events_domain_uuid_at", table_name="agent_events")
    op.drop_index("ix_agent_events_processed_at_id", table_name="agent_events")
    op.drop_table("agent_events")
    op.drop_table("agent_hosts")
