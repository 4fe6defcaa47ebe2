"""What the two command-line programs share (foundation): cliff columns and the confirmation prompt.

``petguard`` (the operator's HTTP client, ``petguard.cli``) and ``petguard-manage`` (on the
controller, ``petguard.cmd.manage``) are kept apart (the ``programs-apart`` and ``manage-apart``
contracts in ``.importlinter``); both print cliff tables of the API's JSON shapes and both ask before a
destructive request. Those pieces live here, below both:

* ``Field``, ``headings`` and ``row``: a JSON object (``petguard.api.wire``'s shapes) as one cliff row;
* ``Time`` and ``Lines``: values that print well in ``table``/``value`` output while ``json``/``yaml``
  keep the machine value (unix seconds, lists);
* ``confirm``: ``--yes``, or "y" typed on a terminal, or refuse (``NotConfirmed``);
* ``CONFIRMATIONS``: what each destructive request asks (fence, confirm-fenced, evacuate, resend,
  brake override), the same words from both programs;
* ``console_handler``: the one stderr log handler of a cliff app (``-v`` warnings, ``-vv`` info).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from cliff.columns import FormattableColumn

Row = tuple[Any, ...]


def format_time(value: float | None) -> str:
    """Unix seconds as UTC ``2025-06-01 12:00:03Z``; None as an empty string."""
    if value is None:
        return ""
    return datetime.datetime.fromtimestamp(value, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class Time(FormattableColumn[float | None]):
    """Unix seconds; shown as UTC ``2025-06-01 12:00:03Z``."""

    def human_readable(self) -> str:
        return format_time(self._value)


class Lines(FormattableColumn[list[Any]]):
    """A list of strings, one per line."""

    def human_readable(self) -> str:
        return "\n".join(self.line(item) for item in self._value or [])

    def line(self, item: Any) -> str:
        return str(item)


@dataclasses.dataclass(frozen=True)
class Field:
    """One column: the JSON key, the heading shown (and selected with ``-c``), how it prints."""

    key: str
    heading: str
    kind: type[FormattableColumn[Any]] | None = None


def headings(fields: Sequence[Field]) -> tuple[str, ...]:
    return tuple(f.heading for f in fields)


def row(obj: Mapping[str, Any], fields: Sequence[Field]) -> Row:
    """The values of ``obj`` for ``fields``; a missing key shows empty (an older daemon)."""
    return tuple(f.kind(obj.get(f.key)) if f.kind else obj.get(f.key) for f in fields)


#: The requests that ask before they are sent, by the journal's request kind: ``(question, action)``
#: with ``{host}`` for the target. Both programs ask the same (``--yes`` skips the question).
CONFIRMATIONS: Mapping[str, tuple[str, str]] = {
    "fence": (
        "This powers off {host} through its BMC; its servers stop and are then evacuated.",
        "fence {host}",
    ),
    "confirm_fenced": (
        "Only confirm if {host} is really powered off (checked at the rack or PDU): its pets are "
        "evacuated next, and if it still runs, they run twice on shared storage.",
        "confirm that {host} is powered off",
    ),
    "evacuate": ("This rebuilds {host}'s pets on other hosts.", "evacuate {host}"),
    "resend": (
        "Only after nova-api and nova-conductor were restarted since {host}'s stuck requests were taken: a "
        "request a live worker still holds would run too, and the pet would be rebuilt twice. petguard still "
        "refuses any request Nova's records show a compute took.",
        "resend the stuck requests of {host}",
    ),
    "brake_override": (
        "The mass-failure brake stops petguard from fencing when many hosts look dead at once, which is "
        "usually a control-plane outage rather than dead hosts. Overriding it lets petguard fence them all.",
        "override the mass-failure brake",
    ),
}


class NotConfirmed(Exception):
    """The operator did not confirm a destructive request; the message says why and what to add."""


def confirm(question: str, action: str, *, yes: bool, stdin: TextIO, stderr: TextIO) -> None:
    """Return when the operator agreed to ``action`` (e.g. "fence cmp1").

    Without ``--yes`` and without a terminal on stdin (cron, a pipe, a script) the request is refused:
    a script must say ``--yes`` explicitly rather than have its stdin answer for it. The question
    goes to stderr so that ``-f json`` output on stdout stays parseable.

    :raises NotConfirmed: no --yes and no terminal, or any answer but y/yes.
    """
    if yes:
        return
    if not stdin.isatty():
        raise NotConfirmed(f"refusing to {action} without confirmation: stdin is not a terminal; add --yes")
    stderr.write(f"{question}\nType 'yes' to {action}: ")
    stderr.flush()
    answer = stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise NotConfirmed(f"not confirmed ({answer or 'no answer'}): did not {action}")


#: cliff's ``-v`` count -> the console's level: errors only by default, then warnings, info; more: debug.
_VERBOSITY = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO}


def console_handler(
    previous: logging.Handler | None,
    stream: TextIO,
    message_format: str,
    verbose_level: int,
    keep: Callable[[logging.LogRecord], bool] | None = None,
) -> logging.Handler:
    """Put a cliff app's stderr handler on the root logger in place of ``previous``; return it.

    Quiet by default (errors only: no library chatter around the output), one level more per ``-v``;
    ``keep`` filters records (the CLI drops the daemon's when both run in one test process).
    """
    root = logging.getLogger()
    if previous is not None:
        root.removeHandler(previous)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(message_format))
    handler.setLevel(_VERBOSITY.get(verbose_level, logging.DEBUG))
    if keep is not None:
        handler.addFilter(keep)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    return handler
