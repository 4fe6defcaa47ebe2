"""Initial journal schema: hosts, incidents, transitions, events, moves, skips, requests, brake, meta.

Written out by hand (not ``metadata.create_all``) so that later changes to ``models.py`` never change
what this version did. ``tests/functional/store`` checks that head and ``models.py`` agree.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 255
ENUM = 32
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    meta = op.create_table(
        "meta",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.Integer, nullable=False),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("opened_at", sa.Double, nullable=False),
        sa.Column("closed_at", sa.Double, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(NAME), nullable=False),
    )
    op.create_index("ix_incidents_host_opened_at", "incidents", ["host", "opened_at"])
    op.create_index("ix_incidents_opened_at", "incidents", ["opened_at"])
    op.create_table(
        "hosts",
        sa.Column("name", sa.String(NAME), primary_key=True),
        sa.Column("state", sa.String(ENUM), nullable=False),
        sa.Column("since", sa.Double, nullable=False),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("verdict", sa.String(ENUM), nullable=False),
        sa.Column("down_streak", sa.Integer, nullable=False),
        sa.Column("up_streak", sa.Integer, nullable=False),
        sa.Column("down_since", sa.Double, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "transitions",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("from_state", sa.String(ENUM), nullable=False),
        sa.Column("to_state", sa.String(ENUM), nullable=False),
        sa.Column("event", sa.String(ENUM), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", sa.Double, nullable=False),
    )
    op.create_index("ix_transitions_host_at", "transitions", ["host", "at"])
    op.create_index("ix_transitions_at", "transitions", ["at"])
    op.create_table(
        "events",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Double, nullable=False),
        sa.Column("host", sa.String(NAME), nullable=True),
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_events_incident_id_at", "events", ["incident_id", "at"])
    op.create_index("ix_events_host_at", "events", ["host", "at"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_table(
        "moves",
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
        sa.Column("server_id", sa.String(NAME), primary_key=True),
        sa.Column("source_host", sa.String(NAME), nullable=False),
        sa.Column("server_name", sa.String(NAME), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("power_goal", sa.String(ENUM), nullable=False),
        sa.Column("status", sa.String(ENUM), nullable=False),
        sa.Column("dest_host", sa.String(NAME), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(NAME), nullable=True),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("plan_order", sa.Integer, nullable=False),
    )
    op.create_table(
        "skips",
        sa.Column("incident_id", sa.Integer, sa.ForeignKey("incidents.id"), primary_key=True),
        sa.Column("server_id", sa.String(NAME), primary_key=True),
        sa.Column("server_name", sa.String(NAME), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("plan_order", sa.Integer, nullable=False),
    )
    op.create_table(
        "operator_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("kind", sa.String(ENUM), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("requested_by", sa.String(NAME), nullable=False),
        sa.Column("requested_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("result", sa.String(ENUM), nullable=True),
        sa.Column("message", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_operator_requests_finished_at_requested_at", "operator_requests", ["finished_at", "requested_at"]
    )
    brake = op.create_table(
        "brake",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("engaged", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("since", sa.Double, nullable=True),
        sa.Column("override_until", sa.Double, nullable=True),
    )
    op.bulk_insert(meta, [{"id": 1, "epoch": 0}])
    op.bulk_insert(brake, [{"id": 1, "engaged": False, "reason": "", "since": None, "override_until": None}])


def downgrade() -> None:
    for table in (
        "brake",
        "operator_requests",
        "skips",
        "moves",
        "events",
        "transitions",
        "hosts",
        "incidents",
        "meta",
    ):
        op.drop_table(table)
