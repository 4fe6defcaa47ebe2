"""Unit-test guard: a unit test that does I/O fails loudly instead of reaching the network or a process.

Unit tests exercise pure domain code and procedures over fakes; a socket connection, a child process
or an openstacksdk connection here is a bug in the test (or a leak of I/O into the domain).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import NoReturn

import pytest

MESSAGE = "unit tests must not do I/O"


def _refuse(*args: object, **kwargs: object) -> NoReturn:
    raise RuntimeError(MESSAGE)


@pytest.fixture(autouse=True)
def _no_io(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse)
    try:
        import openstack
    except ImportError:  # pragma: no cover - openstacksdk is a dependency
        pass
    else:
        monkeypatch.setattr(openstack, "connect", _refuse)
    yield
