"""Fixtures for the store's functional tests: a fresh database per test, on every reachable backend.

``db_url`` is parametrized: sqlite in ``tmp_path`` always; MariaDB (127.0.0.1:3306, root, no
password) and PostgreSQL (127.0.0.1:5432, trust) when their server answers and their driver is
installed, otherwise the test is skipped with the reason. Server databases are named
``petguard_test_<random>`` and dropped afterwards: migration tests get an empty one each, the others
share one migrated database per backend, emptied before each test. ``PETGUARD_TEST_DB=sqlite`` (comma-separated) limits
the backends.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import URL, make_url

from petguard.store import migrate, models
from petguard.store.sql import SqlStore

SERVERS: dict[str, tuple[str, str]] = {
    # backend: (admin URL, driver module)
    "mysql": ("mysql+pymysql://root@127.0.0.1:3306/test", "pymysql"),
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432/test", "psycopg"),
}
_reachable: dict[str, str | None] = {}  # backend -> None if reachable, else why not


def _backends() -> list[str]:
    wanted = os.environ.get("PETGUARD_TEST_DB", "sqlite,mysql,postgresql")
    return [b.strip() for b in wanted.split(",") if b.strip()]


def _admin_engine(backend: str) -> sqlalchemy.Engine:
    url, _ = SERVERS[backend]
    timeout = {"mysql": {"connect_timeout": 2}, "postgresql": {"connect_timeout": 2}}[backend]
    return sqlalchemy.create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args=timeout, poolclass=sqlalchemy.NullPool
    )


def _why_unreachable(backend: str) -> str | None:
    if backend not in _reachable:
        url, module = SERVERS[backend]
        try:
            __import__(module)
            engine = _admin_engine(backend)
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
            _reachable[backend] = None
        except ImportError:
            _reachable[backend] = f"driver {module} not installed (pip install -e '.[test]')"
        except sqlalchemy.exc.SQLAlchemyError as exc:
            _reachable[backend] = f"{backend} server not reachable at {make_url(url).host}: {getattr(exc, 'orig', exc)}"
    return _reachable[backend]


def _create_database(backend: str) -> URL:
    reason = _why_unreachable(backend)
    if reason is not None:
        pytest.skip(reason)
    name = f"petguard_test_{secrets.token_hex(4)}"
    admin = _admin_engine(backend)
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return make_url(SERVERS[backend][0]).set(database=name)


def _drop_database(backend: str, url: URL) -> None:
    drop = f"DROP DATABASE IF EXISTS {url.database}" + (" WITH (FORCE)" if backend == "postgresql" else "")
    admin = _admin_engine(backend)
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(drop))
    admin.dispose()


def _wipe(url: URL) -> None:
    """Empty every table of a migrated database and reset its single rows, as the migration left them."""
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.NullPool)
    with engine.begin() as conn:
        for table in reversed(models.metadata.sorted_tables):
            conn.execute(table.delete())
        conn.execute(models.meta.insert().values(id=models.SINGLE_ROW_ID, epoch=0))
        conn.execute(models.brake.insert().values(id=models.SINGLE_ROW_ID, engaged=False, reason=""))
    engine.dispose()


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[URL]:
    """An empty database (no schema) of its own."""
    if backend == "sqlite":
        yield make_url(f"sqlite:///{tmp_path}/petguard.sqlite")
        return
    url = _create_database(backend)
    try:
        yield url
    finally:
        _drop_database(backend, url)


@pytest.fixture(scope="session")
def _shared_databases() -> Iterator[dict[str, URL]]:
    """One migrated database per server backend for the whole session (migrating MariaDB is slow)."""
    created: dict[str, URL] = {}
    yield created
    for backend, url in created.items():
        _drop_database(backend, url)


@pytest.fixture
def migrated_url(backend: str, tmp_path: Path, _shared_databases: dict[str, URL]) -> URL:
    """A database at head with no data: a fresh sqlite file, or the wiped shared server database."""
    if backend == "sqlite":
        url = make_url(f"sqlite:///{tmp_path}/petguard.sqlite")
        migrate.upgrade(url)
        return url
    if backend not in _shared_databases:
        _shared_databases[backend] = _create_database(backend)
        migrate.upgrade(_shared_databases[backend])
    url = _shared_databases[backend]
    _wipe(url)
    return url


@pytest.fixture
def open_store(migrated_url: URL) -> Iterator[Callable[[], SqlStore]]:
    """Open stores on the migrated database (several = a restart); all closed afterwards."""
    opened: list[SqlStore] = []

    def open_() -> SqlStore:
        store = SqlStore(migrated_url)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], SqlStore]) -> SqlStore:
    return open_store()
