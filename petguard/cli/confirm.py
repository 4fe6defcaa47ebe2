"""Confirmation before destructive requests (``petguard.terminal.confirm``), refused as the CLI's ``Refused``.

Without ``--yes`` and without a terminal on stdin (cron, a pipe, a script) the request is refused:
a script must say ``--yes`` explicitly rather than have its stdin answer for it. The question goes
to stderr so that ``-f json`` output on stdout stays parseable.
"""

from __future__ import annotations

from typing import TextIO

from petguard import terminal
from petguard.cli.errors import Refused


def confirm(question: str, action: str, *, yes: bool, stdin: TextIO, stderr: TextIO) -> None:
    """Return when the operator agreed to ``action`` (e.g. "fence cmp1").

    :raises Refused: no --yes and no terminal, or any answer but y/yes.
    """
    try:
        terminal.confirm(question, action, yes=yes, stdin=stdin, stderr=stderr)
    except terminal.NotConfirmed as exc:
        raise Refused(str(exc)) from None
