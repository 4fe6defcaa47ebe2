"""Alembic environment for the journal (``petguard.store.migrate`` builds the ``Config``).

``migrate.upgrade`` hands over an open connection in ``config.attributes["connection"]``; the URL
is never written into the config (a password containing ``%`` would break its interpolation).
Offline mode (``--sql``) is not supported: petguard migrates live databases only.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from petguard.store.models import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("petguard migrations run through petguard.store.migrate (petguard-manage db upgrade)")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run petguard-manage db upgrade")
run_migrations_online()
