"""The journal on SQL (adapter): ``sql.SqlStore`` implements ``petguard.journal.Store``.

``sql`` is the facade (one transaction per method, retries, the epoch guard); the SQL of each
concern is in its own module: ``epochs``, ``hosts``, ``incidents``, ``moves``, ``loans``,
``requests``, ``alerts``, ``audit``, ``cursors``, ``agents`` (``common`` holds their shared helpers).
``models`` holds the tables, ``rows`` converts them to and from domain values, ``engine`` builds
engines and maps database errors, ``migrate`` runs the alembic migrations in ``migrations/``.
Only this package imports SQLAlchemy and alembic.
"""
