"""The journal's tables, as SQLAlchemy 2 Core ``Table`` objects on one ``MetaData`` (storage edge).

Only ``petguard.store`` sees these; everything else sees the domain values of ``petguard.journal``
(``petguard.store.rows`` converts between the two). The schema itself is created and changed by the
alembic versions in ``petguard/store/migrations/versions``, never by ``metadata.create_all``; a
functional test checks that the migrations at head and these tables agree.

Portable on purpose (sqlite, MariaDB/MySQL incl. Galera, PostgreSQL): bounded ``String`` for keys
and indexed columns, ``Text`` for free text, ``Double`` for timestamps (seconds since the epoch; a
MySQL ``FLOAT`` would lose them), enums stored as their string values without database enum
types, named constraints. Locks are conditional UPDATEs, never ``SELECT ... FOR UPDATE``; the
``meta.epoch`` row is where a leadership compare-and-set hooks in.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

#: Deterministic constraint names, so later migrations can drop or alter them on every backend.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: Host names, server ids and similar keys (MySQL indexes need a bounded length).
NAME = 255
#: Enum values (HostState, MoveStatus ...).
ENUM = 32
#: Short explanations kept with a default (VARCHAR: MySQL refuses a literal default on TEXT).
NOTE = 1024

#: Ever-growing audit tables get 64-bit ids; sqlite only autoincrements an INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")

#: Single-row tables (meta, brake) use this id.
SINGLE_ROW_ID = 1

meta = Table(
    "meta",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    # Leadership epoch: writes from an older epoch are refused (conditional UPDATE on this row).
    Column("epoch", Integer, nullable=False, default=0),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(NAME), nullable=False),
    Column("opened_at", Double, nullable=False),
    Column("closed_at", Double, nullable=True),
    Column("reason", Text, nullable=False),
    Column("outcome", String(NAME), nullable=False, default=""),
    Index(None, "host", "opened_at"),
    Index(None, "opened_at"),
)

hosts = Table(
    "hosts",
    metadata,
    Column("name", String(NAME), primary_key=True),
    Column("state", String(ENUM), nullable=False),
    Column("since", Double, nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=True),
    Column("reason", Text, nullable=False),
    # detect.HostHealth, carried from tick to tick
    Column("verdict", String(ENUM), nullable=False),
    Column("down_streak", Integer, nullable=False),
    Column("up_streak", Integer, nullable=False),
    Column("down_since", Double, nullable=True),
    Column("detail", Text, nullable=False),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("host", String(NAME), nullable=False),
    Column("from_state", String(ENUM), nullable=False),
    Column("to_state", String(ENUM), nullable=False),
    Column("event", String(ENUM), nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", Double, nullable=False),
    Index(None, "host", "at"),
    Index(None, "at"),
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("host", String(NAME), nullable=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=True),
    Column("kind", String(64), nullable=False),
    Column("message", Text, nullable=False),
    Index(None, "incident_id", "at"),
    Index(None, "host", "at"),
    Index(None, "at"),
)

moves = Table(
    "moves",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id"), primary_key=True),
    Column("server_id", String(NAME), primary_key=True),
    Column("source_host", String(NAME), nullable=False),
    Column("server_name", String(NAME), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("power_goal", String(ENUM), nullable=False),
    Column("status", String(ENUM), nullable=False),
    Column("dest_host", String(NAME), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("reason", Text, nullable=False),
    Column("request_id", String(NAME), nullable=True),
    Column("updated_at", Double, nullable=False),
    Column("plan_order", Integer, nullable=False),
    Column("wave", Integer, nullable=False, server_default="0"),
    # the operator's target hint (evacuate.hints) and what became of it
    Column("hint", String(NAME), nullable=False, server_default=""),
    Column("hint_source", String(NAME), nullable=False, server_default=""),
    Column("hint_note", String(NOTE), nullable=False, server_default=""),
    Column("target_host", String(NAME), nullable=True),
    Column("fell_back", Boolean, nullable=False, server_default=false()),
    # a move waiting for the cloud (evacuate.outage): why ("" when not waiting) and since when
    Column("waiting", String(NOTE), nullable=False, server_default=""),
    Column("waiting_since", Double, nullable=True),
    # when an operator vouched that nothing in Nova still holds the move's stuck request (petguard host resend)
    Column("resend_vouched_at", Double, nullable=True),
)

#: Reserved failover hosts (evacuate.reserved): one row per host; a loan is a chain of compare-and-set
#: UPDATEs (idle -> borrowing -> borrowed -> returning -> idle), so a host is never held twice.
reserved_hosts = Table(
    "reserved_hosts",
    metadata,
    Column("host", String(NAME), primary_key=True),
    Column("state", String(ENUM), nullable=False),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=True),
    Column("updated_at", Double, nullable=False),
)

skips = Table(
    "skips",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id"), primary_key=True),
    Column("server_id", String(NAME), primary_key=True),
    Column("server_name", String(NAME), nullable=False),
    Column("reason", Text, nullable=False),
    Column("plan_order", Integer, nullable=False),
)

operator_requests = Table(
    "operator_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("host", String(NAME), nullable=False),  # "*" for cloud-wide requests (brake override)
    Column("kind", String(ENUM), nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(NAME), nullable=False),
    Column("requested_at", Double, nullable=False),
    Column("finished_at", Double, nullable=True),
    Column("result", String(ENUM), nullable=True),  # "done" | "refused"
    Column("message", Text, nullable=True),
    Index(None, "finished_at", "requested_at"),
)

brake = Table(
    "brake",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("engaged", Boolean, nullable=False, default=False),
    Column("reason", Text, nullable=False),
    Column("since", Double, nullable=True),
    Column("override_until", Double, nullable=True),
)

#: Who changed what through the API or the CLI, and with what result (every mutating request).
audit = Table(
    "audit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Double, nullable=False),
    Column("actor", String(NAME), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(NAME), nullable=True),
    Column("result", String(ENUM), nullable=False),
    Column("detail", Text, nullable=False),
    Index(None, "at"),
)

#: Outgoing webhooks: per receiver, the id of the last event delivered. The events table is the
#: durable outbox; a receiver's cursor only moves after a delivery succeeded, so no alert is lost
#: across a restart and a failing receiver holds back only itself.
webhook_cursors = Table(
    "webhook_cursors",
    metadata,
    Column("receiver", String(NAME), primary_key=True),
    Column("last_event_id", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Double, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("updated_at", Double, nullable=False),
)

#: Alerts about hosts (Alertmanager or the plain JSON form), one row per fingerprint. A firing row
#: is evidence for detection until it is resolved or expires; it is never by itself a reason to fence.
alerts = Table(
    "alerts",
    metadata,
    Column("fingerprint", String(NAME), primary_key=True),
    Column("host", String(NAME), nullable=False),
    Column("kind", String(NAME), nullable=False),
    Column("status", String(ENUM), nullable=False),  # "firing" | "resolved"
    Column("summary", Text, nullable=False),
    Column("starts_at", Double, nullable=False),
    Column("expires_at", Double, nullable=False),
    Column("sender", String(NAME), nullable=False),
    Column("updated_at", Double, nullable=False),
    Index(None, "status", "expires_at"),
)

#: Each host's petguard agent: its last heartbeat (controller time) and what it said.
agent_hosts = Table(
    "agent_hosts",
    metadata,
    Column("host", String(NAME), primary_key=True),
    Column("sender", String(NAME), nullable=False),
    Column("last_heartbeat", Double, nullable=False),
    Column("sent_at", Double, nullable=False),
    Column("interval", Double, nullable=False),
    Column("libvirt_connected", Boolean, nullable=False),
    Column("domains", Text, nullable=False),  # JSON: [{uuid, name, state}]
    Column("buffered", Integer, nullable=False),
    Column("dropped", Integer, nullable=False),
    Column("version", String(64), nullable=False),
)

#: Domain events from the agents, once each (host, event_id); processed by the instance-health executor.
agent_events = Table(
    "agent_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("host", String(NAME), nullable=False),
    Column("event_id", String(NAME), nullable=False),
    Column("received_at", Double, nullable=False),
    Column("at", Double, nullable=False),
    Column("domain_uuid", String(64), nullable=False),
    Column("domain_name", String(NAME), nullable=False),
    Column("kind", String(ENUM), nullable=False),
    Column("detail", String(64), nullable=False),
    Column("processed_at", Double, nullable=True),
    UniqueConstraint("host", "event_id"),
    Index(None, "processed_at", "id"),
    Index(None, "domain_uuid", "at"),
)

#: The instance-health policy's state of each server (petguard.guests.policy.ServerHealth as JSON).
instance_health = Table(
    "instance_health",
    metadata,
    Column("server_id", String(64), primary_key=True),
    Column("host", String(NAME), nullable=False),
    Column("phase", String(ENUM), nullable=False),
    Column("pending", Boolean, nullable=False),
    Column("state", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
    Index(None, "pending"),
)
