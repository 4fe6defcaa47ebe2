"""The CLI's error tree, sorted by what the operator does next; each error carries its exit code.

::

    ClientError (exit 1)                 base: caught once, in commands.base.guarded, printed as one line
     +-- ApiError (exit 1)               the daemon answered 4xx/5xx: {"error": {code, title, message}}
     +-- Unreachable (exit 3)            no answer from the daemon (connect refused, no socket, timeout)
     +-- Refused (exit 1)                the loop refused the request, or the operator did not confirm
     +-- StillPending (exit 4)           --timeout passed while the request was still queued
     +-- UsageError (exit 2)             a bad --url or option value argparse could not check

Exit code 2 is also what argparse uses for bad arguments. Messages never carry the token.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_PENDING = 4


class ClientError(Exception):
    """Something the operator must read: printed as ``petguard: <one line>`` on stderr."""

    exit_code = EXIT_ERROR

    def one_line(self) -> str:
        return " ".join(str(self).split())


class ApiError(ClientError):
    """The daemon answered with an error body (or a non-JSON error)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        self.status, self.title, self.message = status, title, message
        super().__init__(f"{title} ({status}): {message}" if message else f"{title} ({status})")


class Unreachable(ClientError):
    """The daemon did not answer at all."""

    exit_code = EXIT_UNREACHABLE


class Refused(ClientError):
    """A request was refused: by the loop, or by the operator at the confirmation prompt."""


class StillPending(ClientError):
    """The request is queued but the loop has not answered it before --timeout."""

    exit_code = EXIT_PENDING


class UsageError(ClientError):
    """An option value that argparse could not check (a --url with an unknown scheme ...)."""

    exit_code = EXIT_USAGE
