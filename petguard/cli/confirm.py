"""Confirmation before destructive requests: ``--yes``, or "y" typed on a terminal, or refuse.

Without ``--yes`` and without a terminal on stdin (cron, a pipe, a script) the request is refused:
a script must say ``--yes`` explicitly rather than have its stdin answer for it. The question goes
to stderr so that ``-f json`` output on stdout stays parseable.
"""

from __future__ import annotations

from typing import TextIO

from petguard.cli.errors import Refused


def confirm(question: str, action: str, *, yes: bool, stdin: TextIO, stderr: TextIO) -> None:
    """Return when the operator agreed to ``action`` (e.g. "fence cmp1").

    :raises Refused: no --yes and no terminal, or any answer but y/yes.
    """
    if yes:
        return
    if not stdin.isatty():
        raise Refused(f"refusing to {action} without confirmation: stdin is not a terminal; add --yes")
    stderr.write(f"{question}\nType 'yes' to {action}: ")
    stderr.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise Refused(f"not confirmed ({answer or 'no answer'}): did not {action}")
