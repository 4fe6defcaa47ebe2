"""Entry point of petguard-manage: administration on the controller itself (a cliff application).

Commands (``petguard-manage help`` lists them; docs/operations.md describes them):

* ``init``: prepare a controller (directories, the API token, agent keys), idempotently
  (``manage_init``);
* ``db upgrade``, ``db version``, ``config check`` (``manage_commands``);
* ``host list``, ``incident list``, ``incident show``, ``request show``: the journal, with cliff's
  formats (``-f table|json|yaml|value|csv``, ``-c COLUMN``) and the API's JSON shapes;
* ``host maintenance on|off``, ``host confirm-fenced``, ``host restore``, ``host fence``,
  ``host evacuate``, ``brake override``: operator requests written into the journal for the loop
  (they work when the daemon is down; the ``petguard`` CLI does the same through the API);
* the spellings of before (``db-upgrade``, ``host-list``, ``request HOST KIND`` ...), plain text;
  ``help`` does not list them (cliff's ``deprecated``).

Global options, anywhere on the line: ``--config-file FILE`` and ``--config-dir DIR`` (repeatable,
read in the order given, with oslo.config's semantics), ``--version``, cliff's ``-v``/``-q``/``--debug``.
Exit statuses: 0 done, 1 an error (or ``config check`` found an ERROR), 2 usage, 78 configuration
(``petguard.startup``; ``manage_base`` has the table).

This program shares no code with the ``petguard`` CLI but foundations (``petguard.terminal``) and the
API's shapes (``petguard.api.wire``, ``petguard.api.columns``): the ``manage-apart`` contract.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, TextIO

from cliff.app import App
from cliff.command import Command
from cliff.commandmanager import CommandManager

from petguard import startup, terminal
from petguard.cmd import manage_commands as c
from petguard.cmd.manage_base import PROG
from petguard.cmd.manage_init import Init

COMMANDS: dict[str, type[Command]] = {
    "init": Init,
    "db upgrade": c.DbUpgrade,
    "db version": c.DbVersion,
    "config check": c.ConfigCheck,
    "host list": c.HostList,
    "host maintenance on": c.MaintenanceOn,
    "host maintenance off": c.MaintenanceOff,
    "host confirm-fenced": c.ConfirmFenced,
    "host restore": c.Restore,
    "host fence": c.Fence,
    "host evacuate": c.Evacuate,
    "host resend": c.Resend,
    "brake override": c.BrakeOverride,
    "incident list": c.IncidentList,
    "incident show": c.IncidentShow,
    "request show": c.RequestShow,
    # the spellings of before, plain text (scripts and the lab parse it)
    "db-upgrade": c.LegacyDbUpgrade,
    "config-check": c.LegacyConfigCheck,
    "host-list": c.LegacyHostList,
    "incident-list": c.LegacyIncidentList,
    "incident-show": c.LegacyIncidentShow,
    "request": c.LegacyRequest,
    "brake-override": c.LegacyBrakeOverride,
}


class ManageApp(App):
    """``petguard-manage``."""

    NAME = PROG

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        manager = CommandManager("petguard.manage")  # no entry points: COMMANDS is the whole table
        for name, factory in COMMANDS.items():
            manager.add_command(name, factory)
        super().__init__(
            description="Administer petguard on a controller: prepare it, its journal, its configuration; "
            "read the journal and queue operator requests (also when the daemon is down).",
            version=startup.version(),
            command_manager=manager,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            deferred_help=True,
        )
        self._log_handler: logging.Handler | None = None

    def build_option_parser(
        self, description: str | None, version: str | None, argparse_kwargs: dict[str, Any] | None = None
    ) -> argparse.ArgumentParser:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        for action in parser._actions:
            if isinstance(action, argparse._VersionAction):
                action.version = f"{PROG} {version}"  # cliff says the script's file name
        # one list for both, in the order given: oslo.config reads files and directories in that order
        parser.add_argument(
            "--config-file",
            dest="config_args",
            action="append",
            type=lambda path: f"--config-file={path}",
            metavar="FILE",
            help="petguard.conf (repeatable; later files override earlier ones)",
        )
        parser.add_argument(
            "--config-dir",
            dest="config_args",
            action="append",
            type=lambda path: f"--config-dir={path}",
            metavar="DIR",
            help="a directory of *.conf files read in name order after the --config-file before it (repeatable)",
        )
        return parser

    def configure_logging(self) -> None:
        """Warnings and errors on stderr (``-v`` for INFO, ``-vv`` for DEBUG), as the petguard CLI does:
        no alembic or oslo chatter around the output by default."""
        self._log_handler = terminal.console_handler(
            self._log_handler, self.stderr, self.CONSOLE_MESSAGE_FORMAT, self.options.verbose_level
        )

    def clean_up(self, cmd: Command, result: int, err: BaseException | None) -> None:
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler = None


def main(argv: list[str] | None = None) -> int:
    """Run petguard-manage; returns its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    app = ManageApp()
    if not argv:  # cliff would open its interactive shell: an operator wants the commands
        app.run(["help"])
        return startup.USAGE
    try:
        return app.run(argv)
    except SystemExit as exc:  # argparse: bad arguments (2), --help or --version (0); cliff's HelpExit: None
        return exc.code if isinstance(exc.code, int) else (startup.OK if exc.code is None else 1)


if __name__ == "__main__":
    sys.exit(main())
