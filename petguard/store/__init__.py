"""The journal on SQL (adapter): ``api.SqlStore`` implements ``petguard.journal.Store``.

``models`` holds the tables, ``rows`` converts them to and from domain values, ``engine`` builds
engines and maps database errors, ``migrate`` runs the alembic migrations in ``migrations/``.
Only this package imports SQLAlchemy and alembic.
"""
