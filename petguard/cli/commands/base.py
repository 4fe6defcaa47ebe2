"""Base classes of every command, and the CLI's one error boundary (``guarded``).

Every command runs inside ``guarded``: a ``ClientError`` (errors.py) becomes one line on stderr,
``petguard: <what is wrong and what to do>``, and its exit code. Anything else is a bug and is left
to cliff (one line, or a traceback with ``--debug``).

``RequestCommand`` is the shape of every command that changes something: confirm if destructive,
``POST`` the request (202), wait for the loop's answer unless ``--no-wait``, print the Request,
and exit 1 when the loop refused it, 4 when it is still pending at ``--timeout``.
"""

from __future__ import annotations

import argparse
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, cast

from cliff import command, lister, show
from cliff.app import App

from petguard.api import columns, wire
from petguard.cli.client import Client, JsonObject, wait_for_request
from petguard.cli.confirm import confirm
from petguard.cli.errors import ClientError, Refused, StillPending

DEFAULT_WAIT = 60.0
#: What ``take_action`` returns: headings, then rows (Lister) or one row (ShowOne).
Table = tuple[Sequence[str], Iterable[Any]]


class HasClient(Protocol):
    def client(self) -> Client: ...

    poll_interval: float


def guarded(app: App, run: Callable[[], int]) -> int:
    """The one error boundary: ``ClientError`` → one line on stderr and its exit code."""
    try:
        return run()
    except ClientError as exc:
        app.stderr.write(f"petguard: {exc.one_line()}\n")
        app.stderr.flush()
        return exc.exit_code


def quote(name: str) -> str:
    """A host, server or id as one path segment."""
    return urllib.parse.quote(str(name), safe="")


def _reason(text: str) -> str:
    if len(text) > wire.MAX_REASON:
        raise argparse.ArgumentTypeError(f"{len(text)} characters; at most {wire.MAX_REASON} are accepted")
    return text


class _Api:
    app: App

    def api(self) -> Client:
        return cast(HasClient, self.app).client()


class Command(_Api, command.Command):
    def run(self, parsed_args: argparse.Namespace) -> int:
        return guarded(self.app, lambda: super(Command, self).run(parsed_args))


class Lister(_Api, lister.Lister):
    def run(self, parsed_args: argparse.Namespace) -> int:
        return guarded(self.app, lambda: super(Lister, self).run(parsed_args))


class ShowOne(_Api, show.ShowOne):
    def run(self, parsed_args: argparse.Namespace) -> int:
        return guarded(self.app, lambda: super(ShowOne, self).run(parsed_args))


def listing(items: Sequence[JsonObject], fields: Sequence[columns.Field]) -> tuple[tuple[str, ...], list[Any]]:
    return columns.headings(fields), [columns.row(item, fields) for item in items]


def one(item: JsonObject, fields: Sequence[columns.Field]) -> tuple[tuple[str, ...], columns.Row]:
    return columns.headings(fields), columns.row(item, fields)


class RequestCommand(ShowOne):
    """Queue a request for the loop and report its answer."""

    #: ``(question, action)`` for destructive requests: asked unless --yes (confirm.py).
    confirmation: tuple[str, str] | None = None
    reason_required = False
    _answer: JsonObject
    _waited: float | None

    def get_parser(self, prog_name: str) -> argparse.ArgumentParser:
        parser = super().get_parser(prog_name)
        self.add_target(parser)
        parser.add_argument(
            "--reason",
            required=self.reason_required,
            type=_reason,
            default="requested with the petguard CLI",
            help="why (recorded in the audit trail)" + ("" if self.reason_required else "; optional"),
        )
        if self.confirmation is not None:
            parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        parser.add_argument(
            "--no-wait", action="store_true", help="return once the request is queued; do not wait for the loop"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=DEFAULT_WAIT,
            metavar="SECONDS",
            help=f"how long to wait for the loop's answer (default {DEFAULT_WAIT:g})",
        )
        return parser

    def add_target(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("host", metavar="HOST", help="compute host, as Nova names it")

    def submit(self, args: argparse.Namespace) -> JsonObject:
        raise NotImplementedError

    def target(self, args: argparse.Namespace) -> str:
        return str(args.host)

    def take_action(self, parsed_args: argparse.Namespace) -> tuple[tuple[str, ...], columns.Row]:
        if self.confirmation is not None:
            question, action = self.confirmation
            confirm(
                question.format(host=self.target(parsed_args)),
                action.format(host=self.target(parsed_args)),
                yes=parsed_args.yes,
                stdin=self.app.stdin,
                stderr=self.app.stderr,
            )
        request: JsonObject = self.submit(parsed_args)["request"]
        if not parsed_args.no_wait:
            interval = cast(HasClient, self.app).poll_interval
            request = wait_for_request(self.api(), request, parsed_args.timeout, interval)
            self._waited = parsed_args.timeout
        self._answer = request
        return one(request, columns.REQUEST)

    def run(self, parsed_args: argparse.Namespace) -> int:
        self._answer = {}
        self._waited = None
        return guarded(self.app, lambda: self._run_and_judge(parsed_args))

    def _run_and_judge(self, parsed_args: argparse.Namespace) -> int:
        result = show.ShowOne.run(self, parsed_args)
        request = self._answer
        if request.get("status") == "refused":
            raise Refused(f"request {request['id']} refused: {request.get('message') or 'no reason given'}")
        if request.get("status") == "pending" and self._waited is not None:
            raise StillPending(
                f"request {request['id']} is still pending after {self._waited:g} s; the daemon acts on it "
                f"at a later tick (see: petguard request show {request['id']})"
            )
        return result


class HostRequest(RequestCommand):
    """``POST /v1/hosts/{host}/requests`` with this class's ``kind``."""

    kind = ""

    def submit(self, args: argparse.Namespace) -> JsonObject:
        body = {"kind": self.kind, "reason": args.reason}
        return self.api().post(f"/v1/hosts/{quote(args.host)}/requests", body)
