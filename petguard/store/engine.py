"""Engines for the journal: one place that knows how petguard talks to each database (storage edge).

``make_engine(url)`` is used by ``petguard.store.sql.SqlStore`` (the daemon) and by
``petguard.store.migrate`` (``petguard-manage db upgrade``). For sqlite it turns on, on every new
connection: WAL (readers never wait for the writer), ``busy_timeout`` (a writer waits for the lock
instead of failing at once) and foreign keys; and it takes the write lock at the start of every
write transaction (``BEGIN IMMEDIATE``), so two writers queue on ``busy_timeout`` instead of
deadlocking on a read-to-write lock upgrade, which no busy handler can resolve.

For MariaDB/MySQL and PostgreSQL every session gets two server-side limits (``STALLED_TRANSACTION``):
a transaction left open and idle is ended by the server, and a statement waits that long at most
for a row lock. Every acting write starts by locking the ``meta`` epoch row; a controller frozen
inside a write (SIGSTOP, a paused VM, a long GC stall) would otherwise hold that row until the
database drops its connection (hours), and the next leader could never claim its epoch. petguard's
own transactions last milliseconds; the ended one is rolled back, so the frozen controller wrote
nothing. A sqlite journal has no server to do this: it is for a single controller.

Library errors are mapped into petguard's tree here (``map_error``), once. ``map_open_error`` is
the same for a program's first connection (the store's schema check, a migration): there a login the
server refuses (wrong user, password or database name) is a ``ConfigError``, so that the daemon exits
78 and systemd stops restarting it; a server that does not answer stays ``StoreUnavailable`` (75).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, InterfaceError, OperationalError

from petguard.errors import ConfigError, Permanent, PetguardError, Temporary

#: How long a sqlite writer waits for the lock before "database is locked" (seconds).
SQLITE_BUSY_TIMEOUT = 5.0

#: Seconds a database session may sit idle inside a transaction, and wait for a row lock, before the
#: server ends it (MariaDB/MySQL, PostgreSQL). Well under ``[coordination] leader_timeout`` x 2, so a
#: frozen leader's open transaction is gone by the time its successor claims the epoch.
STALLED_TRANSACTION = 10.0

#: Execution option naming a connection's transactions as writes (sqlite: ``BEGIN IMMEDIATE``).
WRITE_OPTION = "petguard_write"

#: MariaDB/MySQL errors of a refused login: 1044 access denied to the database, 1045 access denied for
#: the user (wrong password, unknown user), 1049 unknown database, 1698 access denied (auth plugin).
MYSQL_LOGIN_REFUSED = frozenset({1044, 1045, 1049, 1698})
#: PostgreSQL's FATAL refusals at login. psycopg (2 and 3) gives no SQLSTATE for a connection that
#: failed, only libpq's text, so the server's English messages are matched (lc_messages = C or en).
POSTGRESQL_LOGIN_REFUSED = re.compile(
    r'authentication failed for user|role "[^"]*" does not exist|no pg_hba\.conf entry|database "[^"]*" does not exist'
)


class StoreUnavailable(Temporary):
    """The database could not be reached, or stayed locked or deadlocked after a few retries."""


class StoreRefused(Permanent):
    """The database refused a write (a constraint failed): a bug in the caller, never retried."""


def parse_url(url: str | URL) -> URL:
    """Parse a database URL, or say what is wrong with it.

    :raises ConfigError: not a URL SQLAlchemy understands.
    """
    try:
        return make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            "[database] connection is not a database URL (expected e.g. "
            "sqlite:////var/lib/petguard/petguard.sqlite or mysql+pymysql://user:pass@host/petguard)"
        ) from exc


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def check_sqlite_directory(url: URL) -> None:
    """A sqlite file is created on first use, but its directory must already exist.

    :raises ConfigError: the directory is missing.
    """
    database = url.database
    if not is_sqlite(url) or not database or database == ":memory:" or database.startswith("file:"):
        return
    directory = Path(database).expanduser().absolute().parent
    if not directory.is_dir():
        raise ConfigError(
            f"the directory of the sqlite database {database!r} does not exist: create {directory} "
            "(owned by the petguard user; systemd's StateDirectory=petguard does this), or point "
            "[database] connection at an existing directory",
            directory=str(directory),
        )


def make_engine(
    url: str | URL, *, busy_timeout: float = SQLITE_BUSY_TIMEOUT, stalled_transaction: float = STALLED_TRANSACTION
) -> Engine:
    """An engine for ``url`` with petguard's connection settings (``busy_timeout``: sqlite only;
    ``stalled_transaction``: MariaDB/MySQL and PostgreSQL).

    :raises ConfigError: bad URL, missing sqlite directory, or missing database driver.
    """
    parsed = parse_url(url)
    check_sqlite_directory(parsed)
    kwargs: dict[str, Any] = {"pool_pre_ping": not is_sqlite(parsed)}
    if is_sqlite(parsed):
        # Several threads share the engine; the pool gives each connection to one thread at a time.
        kwargs["connect_args"] = {"check_same_thread": False}
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 10
    try:
        engine = create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"no database driver for {parsed.drivername}: install it (pymysql for mysql+pymysql, "
            "psycopg for postgresql+psycopg)",
            driver=parsed.drivername,
        ) from exc
    if is_sqlite(parsed):
        _configure_sqlite(engine, busy_timeout_ms=int(busy_timeout * 1000))
    else:
        _limit_stalled_transactions(engine, parsed.get_backend_name(), stalled_transaction)
    return engine


def _session_limits(backend: str, seconds: float) -> list[str]:
    """The statements that end a stalled transaction of this session (see the module docstring)."""
    if backend == "postgresql":
        ms = int(seconds * 1000)
        return [f"SET idle_in_transaction_session_timeout = {ms}", f"SET lock_timeout = {ms}"]
    if backend in ("mysql", "mariadb"):
        # innodb_lock_wait_timeout takes whole seconds. idle_transaction_timeout is MariaDB's (10.3+;
        # MySQL refuses it and keeps only the lock wait limit); not the _write_ variant: the epoch
        # guard's UPDATE changes no value, so MariaDB does not count its transaction as a write.
        whole = max(1, round(seconds))
        return [
            f"SET SESSION innodb_lock_wait_timeout = {whole}",
            f"SET SESSION idle_transaction_timeout = {whole}",
        ]
    return []


def _limit_stalled_transactions(engine: Engine, backend: str, seconds: float) -> None:
    statements = _session_limits(backend, seconds)
    if not statements:
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                try:
                    cursor.execute(statement)
                except Exception:  # a server without this setting keeps the others
                    if "idle_transaction_timeout" not in statement:
                        raise
                    dbapi_connection.rollback()
            dbapi_connection.commit()  # psycopg opens a transaction for SET: end it, keep the settings
        finally:
            cursor.close()


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite, so that "begin" below decides how to BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = bool(conn.get_execution_options().get(WRITE_OPTION, False))
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the whole transaction may succeed: sqlite locked/busy, MySQL deadlock or
    lock wait timeout, PostgreSQL serialization failure or deadlock."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    text = str(orig).lower()
    if "database is locked" in text or "database table is locked" in text or "database is busy" in text:
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (1205, 1213):  # MySQL/MariaDB: lock wait timeout, deadlock
        return True
    return getattr(orig, "sqlstate", None) in ("40001", "40P01")  # PostgreSQL


def login_refused(exc: BaseException) -> bool:
    """Whether the server answered and refused the login itself: wrong user or password, a database
    that does not exist, no access to it. Not a server that is down, starting or overloaded."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in MYSQL_LOGIN_REFUSED:
        return True
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and (sqlstate.startswith("28") or sqlstate == "3D000"):
        return True  # invalid authorization (28000, 28P01), invalid catalog name (3D000)
    return bool(POSTGRESQL_LOGIN_REFUSED.search(str(orig)))


def map_open_error(exc: Exception, doing: str) -> PetguardError:
    """``map_error`` for a program's first connection to the journal, where a refused login is a
    configuration error (exit 78: restarting cannot fix a password) rather than an outage.

    While the daemon runs, ``map_error`` keeps a refused login ``StoreUnavailable``: the steps in hand
    stay at their journal step and are retried, as in any journal outage, instead of stopping in the
    middle of an incident.
    """
    if login_refused(exc):
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        return ConfigError(
            f"the database refused petguard's login ({doing}): {orig}: check the user, password and database "
            "name in [database] connection (restarting petguard cannot fix this)",
            doing=doing,
        )
    return map_error(exc, doing)


def map_error(exc: Exception, doing: str) -> PetguardError:
    """Translate a SQLAlchemy error into petguard's tree (callers ``raise ... from exc``)."""
    if isinstance(exc, IntegrityError):
        return StoreRefused(f"the database refused to {doing}: {exc.orig}", doing=doing)
    if isinstance(exc, DBAPIError):
        if isinstance(exc, OperationalError | InterfaceError) or is_transient(exc):
            return StoreUnavailable(f"the database is unavailable ({doing}): {exc.orig}", delay=2.0, doing=doing)
        return Permanent(f"the database failed to {doing}: {exc.orig}", doing=doing)
    return Permanent(f"the database failed to {doing}: {exc}", doing=doing)
