"""``petguard``: the cliff application, its global options and the table of commands.

Global options say where the daemon is (``--url`` / ``PETGUARD_URL``) and where the bearer token is
(``--token-file`` / ``PETGUARD_TOKEN_FILE``), and which CA verifies an ``https://`` URL (``--ca-file`` /
``PETGUARD_CA_FILE``). The client is built at the first API call, so
``--help`` works anywhere. ``main()`` is the console script; tests call ``main(argv, transport=...)``
with ``httpx.WSGITransport`` over the daemon's real WSGI app.

Exit codes: 0 done, 1 API error / refused / not confirmed, 2 bad arguments, 3 daemon unreachable,
4 the request is still pending at --timeout (errors.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx
from cliff.app import App
from cliff.command import Command
from cliff.commandmanager import CommandManager

from petguard import __version__, terminal
from petguard.cli.client import DEFAULT_TOKEN_FILE, DEFAULT_URL, Client, parse_url, read_token
from petguard.cli.commands import daemon, hosts, records
from petguard.cli.errors import EXIT_USAGE

COMMANDS: dict[str, type[Command]] = {
    "host list": hosts.HostList,
    "host show": hosts.HostShow,
    "host maintenance on": hosts.MaintenanceOn,
    "host maintenance off": hosts.MaintenanceOff,
    "host fence": hosts.Fence,
    "host confirm-fenced": hosts.ConfirmFenced,
    "host restore": hosts.Restore,
    "host evacuate": hosts.Evacuate,
    "host resend": hosts.Resend,
    "incident list": records.IncidentList,
    "incident show": records.IncidentShow,
    "event list": records.EventList,
    "request show": records.RequestShow,
    "audit list": records.AuditList,
    "agent list": records.AgentList,
    "explain": records.Explain,
    "status": daemon.Status,
    "log-level": daemon.LogLevel,
    "brake override": daemon.BrakeOverride,
}


class PetguardApp(App):
    """The ``petguard`` CLI. ``transport`` replaces the network (tests)."""

    NAME = "petguard"
    LOG = logging.getLogger("petguard.cli")

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        manager = CommandManager("petguard.cli")  # no entry points: COMMANDS is the whole table
        for name, factory in COMMANDS.items():
            manager.add_command(name, factory)
        super().__init__(
            description="Drive the petguard daemon (instance HA for OpenStack pets) through its local API.",
            version=__version__,
            command_manager=manager,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            deferred_help=True,
        )
        self._transport = transport
        self._client: Client | None = None
        self._log_handler: logging.Handler | None = None
        self.poll_interval = 0.5

    def build_option_parser(
        self, description: str | None, version: str | None, argparse_kwargs: dict[str, Any] | None = None
    ) -> argparse.ArgumentParser:
        parser = super().build_option_parser(description, version, argparse_kwargs)
        parser.add_argument(
            "--url",
            default=os.environ.get("PETGUARD_URL", DEFAULT_URL),
            help=f"the daemon's API: http://HOST:PORT, https://HOST:PORT or unix:///PATH (env PETGUARD_URL; "
            f"default {DEFAULT_URL})",
        )
        parser.add_argument(
            "--ca-file",
            default=os.environ.get("PETGUARD_CA_FILE"),
            help="PEM file with the CA certificate that signed the daemon's TLS certificate, for an https:// "
            "--url (env PETGUARD_CA_FILE; default: the system trust store)",
        )
        parser.add_argument(
            "--token-file",
            default=os.environ.get("PETGUARD_TOKEN_FILE", DEFAULT_TOKEN_FILE),
            help=f"file holding the API token, mode 0600 (env PETGUARD_TOKEN_FILE; default {DEFAULT_TOKEN_FILE})",
        )
        parser.add_argument(
            "--token-name",
            default=os.environ.get("PETGUARD_TOKEN_NAME"),
            help="which token, when the token file holds 'NAME TOKEN' lines (env PETGUARD_TOKEN_NAME)",
        )
        return parser

    def client(self) -> Client:
        if self._client is None:
            token_file, name = Path(self.options.token_file), self.options.token_name
            self._client = Client(
                parse_url(self.options.url),
                lambda: read_token(token_file, name),
                self._transport,
                ca_file=self.options.ca_file,
            )
        return self._client

    def configure_logging(self) -> None:
        """Warnings and errors on stderr (``-v`` for INFO, ``-vv`` for DEBUG); no httpx chatter by default."""
        self._log_handler = terminal.console_handler(
            self._log_handler, self.stderr, self.CONSOLE_MESSAGE_FORMAT, self.options.verbose_level, _not_the_daemon
        )

    def clean_up(self, cmd: Command, result: int, err: BaseException | None) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler = None


def _not_the_daemon(record: logging.LogRecord) -> bool:
    """The CLI's records and its libraries', not the daemon's (both run in one process in tests)."""
    return (
        record.name == "petguard" or not record.name.startswith("petguard.") or record.name.startswith("petguard.cli")
    )


def main(argv: list[str] | None = None, transport: httpx.BaseTransport | None = None) -> int:
    """Run the CLI; returns its exit code."""
    argv = sys.argv[1:] if argv is None else argv
    app = PetguardApp(transport=transport)
    if not argv:
        argv = ["help"]
        app.run(argv)
        return EXIT_USAGE
    try:
        return app.run(argv)
    except SystemExit as exc:  # argparse: bad arguments (2), --help (0); cliff's HelpExit: no code, success
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


if __name__ == "__main__":
    sys.exit(main())
