"""Fixtures for the leader election tests: a real etcd or Redis of our own per test module, and a
migrated sqlite journal per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.coordination.peers import BACKENDS, Server, missing


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kind = str(request.param)
    why = missing(kind)
    if why is not None:
        pytest.skip(why)
    server = BACKENDS[kind][0](tmp_path_factory.mktemp(kind)).start()
    yield server
    server.stop()


@pytest.fixture
def server(backend: Server) -> Iterator[Server]:
    """The module's backend, resumed if a test paused it."""
    yield backend
    backend.resume()


def journal(tmp_path: Path) -> str:
    from tests.functional.harness import journal_url

    return journal_url(tmp_path)
