"""The base of every ``petguard-manage`` command: its configuration and its one error boundary.

A command that reads the configuration (``needs_config``, all but ``init``) loads it when it runs,
from the global ``--config-file`` and ``--config-dir`` options in the order given (oslo.config's
semantics: the files of a directory are read in name order, later values win), then checks it
(``petguard.conf.validate``). Errors become one line on stderr, ``petguard-manage: <what to do>``,
and an exit status (``petguard.startup``):

=============================================  ======  ==============================================
configuration (oslo.config, ``ConfigError``)   ``78``  fix the file (a journal not migrated, a login
                                                       the database refuses too); the message never
                                                       quotes a line of the file
a usage error (argparse, ``UsageError``)       ``2``   the command line itself
not confirmed (no ``--yes``, no terminal)      ``1``
any other ``PetguardError``                    ``1``   an unknown incident, a database that is down
=============================================  ======  ==============================================
"""

from __future__ import annotations

import argparse
import getpass
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cliff import command, lister, show
from cliff.app import App
from oslo_config import cfg

from petguard import secrets, startup, terminal
from petguard.conf import CONF, validate
from petguard.errors import ConfigError, PetguardError
from petguard.store.sql import SqlStore

PROG = "petguard-manage"
#: What ``take_action`` returns: headings, then rows (Lister) or one row (ShowOne).
Table = tuple[Sequence[str], Iterable[Any]]


class UsageError(PetguardError):
    """A command line argparse could not check (exit 2)."""


def load_config(config_args: Sequence[str]) -> None:
    """Load petguard.conf from ``--config-file=...``/``--config-dir=...`` arguments, in their order.

    :raises cfg.Error: a file oslo.config cannot read or parse, or a value it cannot convert.
    :raises ConfigError: an unknown option, a value petguard refuses (``petguard.conf.validate``).
    """
    CONF(list(config_args), project="petguard", default_config_files=None)
    validate(CONF)


def guarded(app: App, run: Callable[[], int]) -> int:
    """The one error boundary of petguard-manage: an error → one line on stderr and its exit status."""
    try:
        return run()
    except cfg.Error as exc:
        return _say(app, f"configuration error: {secrets.config_error(exc)}", startup.CONFIG)
    except ConfigError as exc:
        return _say(app, str(exc), startup.CONFIG)
    except UsageError as exc:
        return _say(app, str(exc), startup.USAGE)
    except terminal.NotConfirmed as exc:
        return _say(app, str(exc), 1)
    except PetguardError as exc:
        return _say(app, str(exc), 1)


def _say(app: App, message: str, status: int) -> int:
    app.stderr.write(f"{PROG}: {' '.join(message.split())}\n")
    app.stderr.flush()
    return status


def who() -> str:
    """Who asks, for the audit trail."""
    return f"{getpass.getuser()} ({PROG})"


class _Configured:
    """Loads the configuration before ``take_action`` unless ``needs_config`` is False."""

    app: App
    needs_config = True

    def _prepare(self) -> None:
        if self.needs_config:
            load_config(getattr(self.app.options, "config_args", None) or [])

    def store(self) -> SqlStore:
        return SqlStore(CONF.database.connection)


class Command(_Configured, command.Command):
    def run(self, parsed_args: argparse.Namespace) -> int:
        def go() -> int:
            self._prepare()
            return int(super(Command, self).run(parsed_args) or 0)

        return guarded(self.app, go)


class Lister(_Configured, lister.Lister):
    def run(self, parsed_args: argparse.Namespace) -> int:
        def go() -> int:
            self._prepare()
            return int(super(Lister, self).run(parsed_args) or 0)

        return guarded(self.app, go)


class ShowOne(_Configured, show.ShowOne):
    def run(self, parsed_args: argparse.Namespace) -> int:
        def go() -> int:
            self._prepare()
            return int(super(ShowOne, self).run(parsed_args) or 0)

        return guarded(self.app, go)
