"""The systemd notify protocol: one datagram to ``$NOTIFY_SOCKET``; nothing when it is unset.

``notify("READY=1")``, ``notify("WATCHDOG=1")``, ``notify("STOPPING=1")``, ``notify("STATUS=...")``
(several assignments may go in one message). Abstract sockets (``@name``) are supported. No systemd
library is needed, and a failure to notify never stops the daemon: it is logged and reported False.
"""

from __future__ import annotations

import logging
import os
import socket

LOG = logging.getLogger(__name__)


def address() -> str | None:
    """The socket address systemd gave us (abstract ``@name`` as ``\\0name``), or None."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    return "\0" + path[1:] if path.startswith("@") else path


def notify(*assignments: str) -> bool:
    """Send ``assignments`` (``KEY=value``, joined by newlines) to systemd; True when sent."""
    target = address()
    if target is None or not assignments:
        return False
    if not target.startswith(("/", "\0")):
        LOG.debug("NOTIFY_SOCKET %r is not a unix socket; not notifying", target)
        return False
    message = "\n".join(assignments).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(message)
    except OSError as exc:
        LOG.warning("cannot notify systemd (%s): %s", ", ".join(assignments), exc)
        return False
    return True
