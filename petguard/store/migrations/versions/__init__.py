"""Alembic versions of the journal schema, oldest first (``0001_initial`` creates everything)."""
