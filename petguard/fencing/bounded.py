"""Run one blocking fence-device call with a deadline, in a worker thread (used by the drivers).

Vendor libraries (pyghmi, sushy) cannot be interrupted, so the call runs in a daemon thread that is
abandoned when the deadline passes. That is acceptable only because drivers run in a short-lived
child process (``petguard.fencing.child``): the abandoned thread dies with it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from petguard import errors

T = TypeVar("T")


def call_within(
    timeout: float,
    work: Callable[[], T],
    *,
    name: str,
    timed_out: Callable[[], errors.PetguardError],
    map_error: Callable[[BaseException], errors.PetguardError],
) -> T:
    """``work()`` if it returns within ``timeout`` seconds.

    :raises: ``timed_out()`` when the deadline passes; ``map_error(exc)`` (chained) when ``work``
        raised.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:  # noqa: BLE001 - carried to the caller's thread, mapped there
            box["error"] = exc

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise timed_out()
    if "error" in box:
        raise map_error(box["error"]) from box["error"]
    result: T = box["result"]
    return result
