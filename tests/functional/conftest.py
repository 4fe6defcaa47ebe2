"""Fixtures shared by the functional tests.

``bmcs``: one real IPMI simulator (``ipmi_sim``) per host of the test module's ``HOSTS``, stopped
afterwards; ``harness.powered_nova(bmcs)`` is the in-memory Nova whose computes live while their
BMC keeps them powered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.harness import Bmcs


@pytest.fixture
def bmcs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Bmcs]:
    peers = Bmcs(tmp_path, list(request.module.HOSTS))
    yield peers
    peers.stop()
