"""Schema migrations and the store's refusal to run on a schema that is not at head."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL

from petguard.errors import ConfigError
from petguard.store import migrate, models
from petguard.store.sql import SqlStore


def test_upgrade_from_empty_to_head_and_again(db_url: URL) -> None:
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    migrate.upgrade(db_url)  # a second run is a no-op
    assert migrate.current(db_url) == migrate.head()


def test_head_matches_the_models(migrated_url: URL) -> None:
    engine = sqlalchemy.create_engine(migrated_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), models.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_migration_seeds_single_rows(store: SqlStore) -> None:
    assert store.current_epoch() == 0
    assert store.load_brake().engaged is False


def test_store_refuses_an_empty_database(db_url: URL) -> None:
    with pytest.raises(ConfigError, match="petguard-manage db upgrade") as caught:
        SqlStore(db_url)
    assert "no petguard schema" in str(caught.value)


def test_store_refuses_a_newer_schema_without_suggesting_upgrade(db_url: URL) -> None:
    migrate.upgrade(db_url)
    engine = sqlalchemy.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="newer petguard") as caught:
        SqlStore(db_url)
    assert "db upgrade" not in str(caught.value)


def test_missing_sqlite_directory_says_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/missing/petguard.sqlite"
    for attempt in (lambda: SqlStore(url), lambda: migrate.upgrade(url)):
        with pytest.raises(ConfigError, match="does not exist: create .*missing"):
            attempt()


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        SqlStore("not a url")


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/petguard.sqlite"
    migrate.upgrade(url)
    store = SqlStore(url)
    try:
        engine = store._engine  # white box: the pragmas are the point of this test
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        store.close()


def test_0006_upgrades_a_0005_database_with_moves_in_flight(db_url: URL) -> None:
    """A journal written by the previous petguard (0005) keeps its moves: they get no hint, no
    target and have not fallen back, and the runner reads them as before."""
    migrate.upgrade(db_url, "0005")
    engine = sqlalchemy.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("INSERT INTO incidents (id, host, opened_at, reason, outcome) "
                                     "VALUES (1, 'cmp1', 10.0, 'down', '')"))  # fmt: skip
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO moves (incident_id, server_id, source_host, server_name, priority, power_goal, status, "
                "attempts, reason, updated_at, plan_order, wave) "
                "VALUES (1, 'srv-1', 'cmp1', 'pet-1', 0, 'running', 'accepted', 1, '', 11.0, 0, 2)"
            )
        )
    engine.dispose()

    migrate.upgrade(db_url)

    store = SqlStore(db_url)
    try:
        [move] = store.moves(1)
        assert (move.server_id, move.status.value, move.wave, move.attempts) == ("srv-1", "accepted", 2, 1)
        assert (move.hint, move.hint_source, move.hint_note) == ("", "", "")
        assert move.target_host is None and not move.fell_back
    finally:
        store.close()
