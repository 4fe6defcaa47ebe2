"""Schema migrations of the journal: ``petguard-manage db upgrade`` calls ``upgrade(url)``.

The daemon never migrates: ``SqlStore`` only checks (``check_at_head``) and refuses to start on a
schema that is not at head, telling the operator to run ``petguard-manage db upgrade``. The alembic
scripts live inside the package (``petguard/store/migrations``), so an installed petguard needs no
``alembic.ini``; the ``Config`` is built here.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from petguard.errors import ConfigError
from petguard.store.engine import make_engine, map_open_error

SCRIPT_LOCATION = "petguard.store:migrations"
UPGRADE_HINT = "run `petguard-manage db upgrade` (with the same [database] connection) before starting petguard"


def alembic_config() -> Config:
    """The alembic configuration of the journal, without any URL in it."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


def head() -> str:
    """The newest schema revision this petguard knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:  # pragma: no cover - the package always ships versions
        raise ConfigError("petguard's migration scripts are missing: reinstall petguard")
    return revision


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: head). Safe to run again.

    :raises ConfigError: bad URL, missing sqlite directory, or a login the server refused.
    :raises petguard.store.engine.StoreUnavailable: the database could not be reached.
    """
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    except SQLAlchemyError as exc:
        raise map_open_error(exc, "migrate the schema") from exc
    finally:
        engine.dispose()


def current(url: str | URL) -> str | None:
    """The schema revision of the database at ``url`` (None: empty database)."""
    engine = make_engine(url)
    try:
        return current_of(engine)
    finally:
        engine.dispose()


def current_of(engine: Engine) -> str | None:
    """The schema revision of the database behind ``engine``.

    :raises ConfigError: the server refused the login (``map_open_error``).
    :raises petguard.store.engine.StoreUnavailable: the database could not be reached.
    """
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise map_open_error(exc, "read the schema revision") from exc


def check_at_head(engine: Engine) -> None:
    """Refuse a database whose schema is not the one this petguard was written for.

    :raises ConfigError: the schema is empty, older or newer than head; says what to do.
    """
    found, wanted = current_of(engine), head()
    if found == wanted:
        return
    if found is None:
        problem = "the database has no petguard schema yet"
    elif not _known(found):
        raise ConfigError(
            f"the database schema is at revision {found}, which this petguard does not know (it needs "
            f"{wanted}): the database was upgraded by a newer petguard; run that version, or restore a backup",
            found=found,
            wanted=wanted,
        )
    else:
        problem = f"the database schema is at revision {found}, this petguard needs {wanted}"
    raise ConfigError(f"{problem}: {UPGRADE_HINT}", found=found, wanted=wanted)


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
