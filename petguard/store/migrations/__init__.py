"""Alembic migrations of the journal schema (run by ``petguard.store.migrate``, never by the daemon)."""
